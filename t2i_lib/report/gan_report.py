"""Figures for notebook 02: GAN loss curves from ``stats.jsonl`` and the sample grid with its captions."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..utils.grid import GRID_NROW, GRID_PADDING
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


def split_grid(grid_png: str | Path, n: int, nrow: int = GRID_NROW, padding: int = GRID_PADDING) -> list:
    """The ``n`` tiles (``H x W x 3`` uint8) of a grid written by ``torchvision.utils.make_grid`` with ``nrow``
    tiles per row and ``padding`` pixels around each (the run's sample grid: ``t2i_lib.train.gan.sample_grid``)."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(Image.open(grid_png).convert("RGB"))
    cols, rows = min(nrow, n), -(-n // nrow)
    tile_h, tile_w = (arr.shape[0] - padding) // rows - padding, (arr.shape[1] - padding) // cols - padding
    if tile_h < 1 or tile_w < 1 or rows * (tile_h + padding) + padding != arr.shape[0] \
            or cols * (tile_w + padding) + padding != arr.shape[1]:
        raise ValueError(f"{grid_png}: a {arr.shape[1]}x{arr.shape[0]} image is not a grid of {n} tiles, {nrow} per "
                         f"row with padding {padding}")
    step_h, step_w = tile_h + padding, tile_w + padding
    return [arr[padding + (k // cols) * step_h:][:tile_h, padding + (k % cols) * step_w:][:, :tile_w]
            for k in range(n)]


def captioned_samples(summary: dict, title: str = "", ncols: int = 4):
    """The run's final sample grid, each image with the caption it was generated from underneath."""
    captions = sample_captions(summary)
    tiles = split_grid(summary["sample_grid"], len(captions))
    return figures.image_caption_grid(tiles, [[c] for c in captions], ncols=ncols, width=30, title=title or None)


def publish_run_figures(summary: dict, figures_dir: str | Path, experiment: str) -> dict[str, Path]:
    """A finished run's figures, under the names the study's reports use (the last run written wins):
    ``02_<experiment>_losses.png`` (training curves; the fake-to-fake term against its chance value),
    ``02_<experiment>_samples.png`` (the final sample grid) and ``02_<experiment>_samples_captioned.png`` (the same
    images with their captions).  Notebook 02 and each piece of ``scripts/gpu_study.py`` call this, so the
    figures need only the run folder, never a whole study on one machine."""
    figures_dir = Path(figures_dir)
    title = f"{summary['run_id']} ({summary['steps']} steps)"
    return {"losses": figures.save(loss_curves(read_stats(summary["stats"]), title, f2f_chance(summary)),
                                   figures_dir / f"02_{experiment}_losses.png"),
            "samples": publish_samples(summary, figures_dir / f"02_{experiment}_samples.png"),
            "captioned": figures.save(captioned_samples(summary, title),
                                      figures_dir / f"02_{experiment}_samples_captioned.png")}


def _legend_below(fig, ax, title: str = ""):
    """One legend (``ax``'s lines) under a row of panels, and the title above them."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def discriminator_probe_figure(records, labels=None):
    """Bars per attribute, one per probed checkpoint (:func:`t2i_lib.metrics.discriminator_probe.probe_gan_checkpoint`
    records): how often the discriminator scores a real image higher with its own caption than with one wrong in
    that attribute, the same-attributes control beside them, 50 % (a blind head) as a dashed line."""
    plt = figures._plt()
    if not records:
        raise ValueError("no discriminator probe records to draw")
    labels = list(labels) if labels else [f"{r['run_id']} @ {r['step']}" for r in records]
    names = list(records[0]["attributes"]) + ["control"]
    fig, ax = plt.subplots(figsize=(max(7.0, min(11.0, 2.0 + 0.4 * len(names) * len(records))), 4.2))
    width = 0.8 / len(records)
    for k, (rec, label) in enumerate(zip(records, labels)):
        vals = [rec["attributes"][n]["own_beats_other"] for n in names[:-1]] + [rec["control"]["own_beats_other"]]
        xs = [i + (k - (len(records) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [math.nan if v is None else 100 * v for v in vals], width, label=label)
    ax.axhline(50, color="black", linestyle="--", linewidth=1, label="blind to the attribute (50 %)")
    ax.set_xticks(range(len(names)), [n if n != "control" else "control:\nsame attributes" for n in names])
    ax.set_ylim(0, 100)
    ax.set_ylabel("% own caption scored higher\n(real test images)")
    ax.set_title("Does the discriminator's conditional head see the attribute?", fontsize=10)
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, -0.45), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def ca_probe_figure(records, labels=None):
    """Two panels, a group of bars per attribute and a bar per probed checkpoint in each
    (:func:`t2i_lib.metrics.conditioning_probe.probe_ca_checkpoint` records): the between-class share of the
    variance in the CA mean, with a black tick at the same share in the sentence embeddings of that checkpoint's
    encoder (what the encoder offers); and the CA mean's between-class variance over the CA noise (near 0: the first
    stage cannot tell the classes apart)."""
    plt = figures._plt()
    if not records:
        raise ValueError("no conditioning probe records to draw")
    labels = list(labels) if labels else [r.get("label") or f"{r['run_id']} @ {r['step']}" for r in records]
    names = list(records[0]["attributes"])
    fig, axes = plt.subplots(1, 2, figsize=(max(9.0, min(13.0, 3.0 + 0.5 * len(names) * len(records))), 4.6))
    width = 0.8 / len(records)
    for k, (rec, label) in enumerate(zip(records, labels)):
        xs = [i + (k - (len(records) - 1) / 2) * width for i in range(len(names))]
        axes[0].bar(xs, [100 * rec["attributes"][n]["mu_share"] for n in names], width, label=label)
        axes[0].hlines([100 * rec["attributes"][n]["sentence_share"] for n in names],
                       [x - width / 2 for x in xs], [x + width / 2 for x in xs], color="black", linewidth=2,
                       label="the same share in the sentence embeddings" if k == 0 else None)
        axes[1].bar(xs, [rec["attributes"][n]["signal_to_noise"] for n in names], width, label=label)
    for ax in axes:
        ax.set_xticks(range(len(names)), names)
    axes[0].set_ylabel("% of the CA mean's variance\nbetween the attribute's values")
    axes[0].set_title("What the encoder offers (tick) and the CA network keeps (bar)", fontsize=10)
    axes[1].set_ylabel("between-class variance of the CA mean\n/ CA noise variance")
    axes[1].set_title("Does the attribute rise above the CA noise?", fontsize=10)
    for ax in axes:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1, frameon=False)
    fig.tight_layout()
    return fig


def backbone_readout_figure(curves: dict[str, list[dict]], title: str = ""):
    """One panel per attribute: :func:`t2i_lib.metrics.discriminator_probe.train_backbone_readout` test accuracy
    against the training step, one line per curve (``{label: records}``), chance dashed; a last panel with the
    blocks' residual gates (mean over blocks) per curve."""
    plt = figures._plt()
    if not curves or not any(curves.values()):
        raise ValueError("no read-out curves to draw")
    first = next(iter(r for r in curves.values() if r))[0]
    names = list(first["accuracy"])
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(3.0 * (len(names) + 1), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for label, recs in curves.items():
            ax.plot([r["step"] for r in recs], [100 * r["accuracy"][name] for r in recs], marker="o",
                    markersize=3, label=label)
        ax.axhline(100 * first["chance"][name], color="black", linestyle="--", linewidth=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel("% test images read right")
    gate_ax = axes[0][-1]
    for label, recs in curves.items():
        gate_ax.plot([r["step"] for r in recs], [sum(r["gates"]) / len(r["gates"]) for r in recs], marker="o",
                     markersize=3, label=label)
    gate_ax.axhline(0, color="black", linestyle="--", linewidth=1)
    gate_ax.set_title("residual gate (mean of blocks)", fontsize=9)
    gate_ax.set_xlabel("training step")
    return _legend_below(fig, axes[0][0], title)


def matching_head_figure(curves: dict[str, list[dict]], title: str = ""):
    """One panel per attribute: :func:`t2i_lib.metrics.discriminator_probe.train_matching_head` probes against the
    training step, one line per curve (``{label: records}``), 50 % (a blind head) dashed."""
    plt = figures._plt()
    if not curves or not any(curves.values()):
        raise ValueError("no matching-head curves to draw")
    names = list(next(iter(r for r in curves.values() if r))[0]["attributes"])
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        for label, recs in curves.items():
            vals = [r["attributes"][name]["own_beats_other"] for r in recs]
            ax.plot([r["step"] for r in recs], [math.nan if v is None else 100 * v for v in vals],
                    marker="o", markersize=3, label=label)
        ax.axhline(50, color="black", linestyle="--", linewidth=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel("% own caption scored higher")
    return _legend_below(fig, axes[0][0], title)
