"""Notebook 05's qualitative view: for a few test images, the real image, its captions and what each loss
variant generates from each caption (same noise per row), side by side."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from . import figures


_SHORT = {"ssagan": "SSA-GAN", "style_attngan": "AttnGAN + style blocks", "attngan": "AttnGAN"}


@torch.no_grad()
def side_by_side(configs: Sequence, dataset_root, device, n_images: int = 4, k: int = 3, seed: int = 0,
                 caption_width: int = 95):
    """One block per test image: its captions in full above, then one row per run (``configs``, usually the loss
    variants of one model family) of the images generated from each of the k captions with the same noise, the real
    image at the left of the block's first row.  Columns: 1 + k (at most ~8 images across stays readable)."""
    import textwrap

    from ..data.dataset import CaptionDataset
    from ..metrics.consistency import consistency_plan
    from ..metrics.evaluate import variant_of
    from ..metrics.sampling import generate, sample_noise
    from ..train.damsm import encoder_path, load_encoders
    from ..train.gan import get_family, load_generator, run_dir_for
    from ..utils.io import read_json

    cfg0 = configs[0]
    test = CaptionDataset(dataset_root, "test", (cfg0.data.image_size,), 1, cfg0.data.max_words, "truncate")
    text_enc, _, _ = load_encoders(encoder_path(cfg0), device, vocab_hash=test.vocab.hash)
    plan = consistency_plan(test, n_images, k, seed)
    items, caps = plan["sib_items"], plan["sib_caps"]
    n = items.shape[0]
    gens = []
    for c in configs:
        G, _ = load_generator(read_json(run_dir_for(c) / "summary.json")["checkpoint"], device)
        gens.append((G, get_family(c.model.family), c))
    families = {c.model.family for c in configs}
    label = (lambda c: variant_of(c)) if len(families) == 1 else (
        lambda c: f"{_SHORT.get(c.model.family, c.model.family)}\n{variant_of(c)}")
    blocks = []
    for r in range(n):
        rec = test.records[int(items[r, 0])]
        texts = [rec["captions"][int(caps[r, j])] for j in range(k)]
        lines = [line for j, t in enumerate(texts) for line in textwrap.wrap(f"{j + 1}. {t}", caption_width)]
        blocks.append((rec["key"], lines, test.load_and_transform(int(items[r, 0]))[-1]))
    plt = figures._plt()
    cell = 1.25
    heights = [len(gens) * cell + 0.25 + 0.13 * len(lines) for _, lines, _ in blocks]
    fig = plt.figure(figsize=(cell * (1 + k) + 0.5, sum(heights)), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.02, wspace=0.0, hspace=0.0)
    if len(families) == 1:
        fam = next(iter(families))
        fig.suptitle(f"{_SHORT.get(fam, fam)}: rows = loss variants, same noise across a row", fontsize=9)
    subfigs = fig.subfigures(n, 1, height_ratios=heights, squeeze=False)[:, 0]
    for r, (sf, (key, lines, real)) in enumerate(zip(subfigs, blocks)):
        sf.suptitle(f"test image {key}\n" + "\n".join(lines), fontsize=7, x=0.01, ha="left")
        axes = sf.subplots(len(gens), 1 + k, squeeze=False)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
        axes[0, 0].imshow(figures.to_uint8(real))
        axes[0, 0].set_title("real", fontsize=7)
        for i, (G, fam, c) in enumerate(gens):
            z = sample_noise([r] * k, fam.noise_dim(c), seed)
            imgs = next(generate(G, fam.sampler(c, figures=True), text_enc, test, items[r], caps[r], fam.noise_dim(c), seed, device,
                                 batch_size=k, noise=z))
            axes[i, 1].set_ylabel(label(c), fontsize=7)
            for j in range(k):
                axes[i, 1 + j].imshow(figures.to_uint8(imgs[j]))
                if i == 0:
                    axes[i, 1 + j].set_title(f"caption {j + 1}", fontsize=7)
    return fig


def side_by_side_by_family(configs: Sequence, dataset_root, device, **kw) -> dict:
    """:func:`side_by_side` once per model family of ``configs`` (in their order): {family: figure}."""
    out: dict = {}
    for fam in dict.fromkeys(c.model.family for c in configs):
        out[fam] = side_by_side([c for c in configs if c.model.family == fam], dataset_root, device, **kw)
    return out


def metric_bars(records: Sequence[dict], metrics: Sequence[tuple[str, str | None, str]], noise_floor: float = 1e-6):
    """One panel per metric (key, std key or None, label): x = loss variant, one bar per model family (mean over
    seeds; error bar = std over seeds, or the metric's own std when a single seed).  A metric whose values are all
    missing, or all below ``noise_floor`` in magnitude (floating-point noise, e.g. a gap that is exactly zero in
    theory), gets a note in its panel instead of bars."""
    plt = figures._plt()
    order = ["baseline", "f2r", "f2f", "both"]
    variants = sorted({r["variant"] for r in records}, key=lambda v: order.index(v) if v in order else 9)
    families = list(dict.fromkeys(r["family"] for r in sorted(records, key=lambda r: r["family"])))
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.2), squeeze=False)
    width = 0.8 / max(1, len(families))
    for ax, (key, std_key, label) in zip(axes[0], metrics):
        ax.set_title(label, fontsize=9)
        table = {}
        for f in families:
            for v in variants:
                sel = [r for r in records if r["family"] == f and r["variant"] == v]
                vals = [r["metrics"][key] for r in sel if r["metrics"].get(key) is not None]
                if not vals:
                    continue
                if len(vals) > 1:
                    err = float(np.std(vals, ddof=1))
                else:
                    err = float(sel[0]["metrics"].get(std_key) or 0) if std_key else 0.0
                table[f, v] = (float(np.mean(vals)), err)
        finite = [abs(m) for m, _ in table.values() if np.isfinite(m)]
        if not finite or max(finite) < noise_floor:
            note = "not measured" if not finite else f"all values below {noise_floor:g}:\nnothing to compare"
            ax.text(0.5, 0.5, note, ha="center", va="center", fontsize=8, color="#555555", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for i, f in enumerate(families):
            xs = [j + (i - (len(families) - 1) / 2) * width for j, v in enumerate(variants) if (f, v) in table]
            ms = [table[f, v][0] for v in variants if (f, v) in table]
            es = [table[f, v][1] for v in variants if (f, v) in table]
            ax.bar(xs, ms, width=width, yerr=es, capsize=2, color=colours[i % len(colours)],
                   label=_SHORT.get(f, f))
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    handles, labels = next(((a.get_legend_handles_labels()) for a in axes[0] if a.get_legend_handles_labels()[0]),
                           ([], []))
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
