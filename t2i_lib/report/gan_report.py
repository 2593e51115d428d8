"""Figures for notebook 02: GAN loss curves from ``stats.jsonl`` and the sample grid with its captions."""

from __future__ import annotations

import json
import math
from pathlib import Path

from . import figures

_GROUPS = (("discriminator", ("d_total", "d_real", "d_fake", "d_mis", "d_magp")),
           ("generator", ("g_total", "g_adv")),
           ("DAMSM term", ("g_damsm",)),
           ("contrastive terms", ("g_f2f", "g_f2r")))  # own panel: the DAMSM term starts ten times higher


def read_stats(path: str | Path) -> list[dict]:
    return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]


def f2f_chance(summary: dict) -> float | None:
    """The fake-to-fake term's value when the image features carry no information about which fakes pair up:
    NT-Xent over N pairs (2N fakes) at uniform similarity is ln(2N - 1), N = fakes per caption set
    (``images_per_step / 2`` with two caption sets).  None for a single-caption run."""
    n = int(summary.get("images_per_step", 0)) // 2 if summary.get("caption_sets", "paired") == "paired" else 0
    return math.log(2 * n - 1) if n >= 2 else None


def loss_curves(stats: list[dict], title: str = "", f2f_chance: float | None = None):
    """Four panels: D terms, G terms, the DAMSM term, the contrastive terms (unweighted values) against the step; with
    ``f2f_chance`` (:func:`f2f_chance`) a dashed line marks the fake-to-fake term's chance value."""
    plt = figures._plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.3))
    steps = [r["step"] for r in stats]
    for ax, (name, keys) in zip(axes, _GROUPS):
        for k in keys:
            if any(k in r for r in stats):
                ax.plot(steps, [r.get(k, float("nan")) for r in stats], label=k, lw=1.2)
        if name == "contrastive terms" and f2f_chance is not None and any("g_f2f" in r for r in stats):
            ax.axhline(f2f_chance, ls="--", lw=1, color="0.4", label=f"g_f2f chance ln(2N-1) = {f2f_chance:.2f}")
        ax.set_title(name)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def publish_samples(summary: dict, dest: str | Path) -> Path:
    """Copy a run's final sample grid to ``dest`` (e.g. ``results/<profile>/figures/``) and return the path."""
    from ..utils.io import atomic_write_bytes

    return atomic_write_bytes(dest, Path(summary["sample_grid"]).read_bytes())


def sample_captions(summary: dict) -> list[str]:
    """The captions of the sample grid, in row-major order."""
    return json.loads((Path(summary["sample_grid"]).parent / "captions.json").read_text())
