"""Notebook 05's qualitative view: for a few test images, the real image, its captions and what each loss
variant generates from each caption (same noise per row), side by side."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from . import figures


@torch.no_grad()
def side_by_side(configs: Sequence, dataset_root, device, n_images: int = 4, k: int = 3, seed: int = 0):
    """Rows: test images; columns: the real image, then for each run, the images from its k captions."""
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
    plt = figures._plt()
    fig, axes = plt.subplots(n, 1 + len(configs) * k, figsize=(1.25 * (1 + len(configs) * k), 1.45 * n + 1.2),
                             squeeze=False)
    gens = {}
    for c in configs:
        G, _ = load_generator(read_json(run_dir_for(c) / "summary.json")["checkpoint"], device)
        gens[c.experiment] = (G, get_family(c.model.family), c)
    for r in range(n):
        real = test.load_and_transform(int(items[r, 0]))[-1]
        axes[r, 0].imshow(figures.to_uint8(real))
        col = 1
        for name, (G, fam, c) in gens.items():
            z = sample_noise([r] * k, fam.noise_dim(c), seed)
            imgs = next(generate(G, fam.generate, text_enc, test, items[r], caps[r], fam.noise_dim(c), seed, device,
                                 batch_size=k, noise=z))
            for j in range(k):
                axes[r, col].imshow(figures.to_uint8(imgs[j]))
                if r == 0:
                    short = {"ssagan": "SSA-GAN", "style_attngan": "Style-AttnGAN", "attngan": "AttnGAN"}
                    axes[r, col].set_title(f"{short.get(c.model.family, c.model.family)} {variant_of(c)}\n"
                                           f"caption {j + 1}", fontsize=7)
                col += 1
        caption_text = " | ".join(f"{j + 1}. {test.records[int(items[r, 0])]['captions'][int(caps[r, j])]}"
                                  for j in range(k))
        axes[r, 0].set_ylabel(test.records[int(items[r, 0])]["key"], fontsize=6)
        axes[r, 1].text(0, -0.12, caption_text[:160], transform=axes[r, 1].transAxes, fontsize=6, va="top")
    axes[0, 0].set_title("real", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def metric_bars(records: Sequence[dict], metrics: Sequence[tuple[str, str | None, str]]):
    """One panel per metric (key, std key or None, label), bars per experiment (mean over seeds, error bar =
    std over seeds, or the metric's own std when a single seed)."""
    plt = figures._plt()
    exps = sorted({r["experiment"] for r in records}, key=lambda e: (e.split("_")[0], ["baseline", "f2r", "f2f",
                                                                                        "both"].index(
        e.split("_")[-1]) if e.split("_")[-1] in ("baseline", "f2r", "f2f", "both") else 9))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    for ax, (key, std_key, label) in zip(axes[0], metrics):
        means, errs = [], []
        for e in exps:
            vals = [r["metrics"][key] for r in records if r["experiment"] == e and r["metrics"].get(key) is not None]
            if not vals:
                means.append(np.nan)
                errs.append(0)
                continue
            means.append(float(np.mean(vals)))
            if len(vals) > 1:
                errs.append(float(np.std(vals, ddof=1)))
            elif std_key:
                errs.append(float(next(r["metrics"].get(std_key) or 0 for r in records if r["experiment"] == e)))
            else:
                errs.append(0)
        ax.bar(range(len(exps)), means, yerr=errs, capsize=3,
               color=["#4c72b0", "#dd8452", "#55a868", "#c44e52"] * 3)
        ax.set_xticks(range(len(exps)))
        ax.set_xticklabels([e.replace("_", "\n", 1) for e in exps], fontsize=7)
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    return fig
