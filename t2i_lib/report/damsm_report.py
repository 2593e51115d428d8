"""Figures for notebook 01: DAMSM loss and R-precision curves, word-attention maps."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import figures


def curves_figure(history: Sequence[dict], title: str = "DAMSM pretraining"):
    """Train/validation DAMSM loss and real-image R-precision per epoch."""
    plt = figures._plt()
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    for key, label in (("train_total", "train"), ("val_total", "validation")):
        if all(key in h for h in history):
            a.plot(ep, [h[key] for h in history], marker="o", ms=3, label=label)
    a.set_xlabel("epoch")
    a.set_ylabel("DAMSM loss (w0+w1+s0+s1)")
    a.legend()
    a.set_title(title)
    rp = np.array([h["r_precision"] for h in history])
    sd = np.array([h.get("r_precision_std", 0.0) for h in history])
    b.plot(ep, rp * 100, marker="o", ms=3, color="#55a868")
    b.fill_between(ep, (rp - sd) * 100, (rp + sd) * 100, color="#55a868", alpha=0.2)
    b.set_xlabel("epoch")
    b.set_ylabel("R-precision, real validation images (%)")
    b.set_ylim(0, 100)
    b.set_title("retrieval accuracy")
    fig.tight_layout()
    return fig


def attention_examples(text_enc, image_enc, dataset, indices: Sequence[int], device, gamma1: float,
                       caption_index: int = 0) -> list[dict]:
    """For each dataset item: its image, the words of one caption and each word's attention over regions."""
    import torch

    from ..data.text import fixed_length
    from ..losses.damsm import func_attention

    text_enc.eval()
    image_enc.eval()
    out = []
    with torch.no_grad():
        for i in indices:
            rec = dataset.records[i]
            c = caption_index % len(rec["tokens"])
            ids, n = fixed_length(rec["tokens"][c], dataset.max_words, "truncate")
            img = dataset.load_and_transform(i)[-1]
            region, _ = image_enc(img[None].to(device))
            words, _ = text_enc(torch.from_numpy(ids)[None].to(device), torch.tensor([n], device=device))
            _, attn = func_attention(words[:, :, :n], region, gamma1)
            h, w = region.shape[-2:]
            out.append({"image": figures.to_uint8(img), "words": [dataset.vocab.idx_to_word[int(t)] for t in ids[:n]],
                        "attention": attn[0].reshape(n, h, w).float().cpu().numpy(), "key": rec["key"],
                        "caption": rec["captions"][c]})
    return out


def attention_figure(examples: Sequence[dict], max_words: int = 8):
    """One row per example: the image, then each word's attention map overlaid on it."""
    plt = figures._plt()
    ncols = 1 + min(max_words, max(len(e["words"]) for e in examples))
    fig, axes = plt.subplots(len(examples), ncols, figsize=(1.7 * ncols, 1.9 * len(examples)), squeeze=False)
    for r, ex in enumerate(examples):
        img = ex["image"]
        size = img.shape[0]
        axes[r, 0].imshow(img)
        axes[r, 0].set_title(ex["key"], fontsize=7)
        for c in range(1, ncols):
            ax = axes[r, c]
            if c - 1 < len(ex["words"]):
                att = ex["attention"][c - 1]
                att = (att - att.min()) / (att.max() - att.min() + 1e-12)
                up = np.kron(att, np.ones((size // att.shape[0], size // att.shape[1])))
                ax.imshow(img)
                ax.imshow(up, cmap="magma", alpha=0.6, extent=(0, size, size, 0))
                ax.set_title(ex["words"][c - 1], fontsize=8)
        for ax in axes[r]:
            ax.axis("off")
    fig.tight_layout()
    return fig


PROBE_MEASURES = (("retrieval_agreement", "retrieval_chance", "caption -> image retrieval"),
                  ("image_probe", "image_probe_majority", "linear probe, image feature"),
                  ("text_probe", "text_probe_majority", "linear probe, sentence embedding"))


def attribute_probe_figure(records: Sequence[dict]):
    """One panel per encoder (:func:`t2i_lib.metrics.encoder_probe.probe_encoders` records with ``run_id`` and
    ``damsm_seed``): per attribute, retrieval agreement and both linear probes as bars, each chance level a black
    tick."""
    plt = figures._plt()
    if not records:
        raise ValueError("no probe records to draw")
    fig, axes = plt.subplots(1, len(records), figsize=(max(7.0, 5.5 * len(records)), 4.0), squeeze=False)
    width = 0.8 / len(PROBE_MEASURES)
    for ax, rec in zip(axes[0], records):
        names = list(rec["attributes"])
        for k, (key, chance_key, label) in enumerate(PROBE_MEASURES):
            xs = [i + (k - 1) * width for i in range(len(names))]
            ax.bar(xs, [100 * rec["attributes"][n][key] for n in names], width, label=label)
            ax.scatter(xs, [100 * rec["attributes"][n][chance_key] for n in names], marker="_", s=120,
                       color="black", zorder=3, label="chance" if k == 0 else None)
        ax.set_xticks(range(len(names)), names)
        ax.set_ylim(0, 100)
        ax.set_ylabel("% right on real test images")
        ax.set_title(f"{rec.get('role', rec['run_id'])} (DAMSM seed {rec['damsm_seed']})", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    return fig


def attribute_probe_epochs_figure(records: Sequence[dict]):
    """Retrieval agreement per attribute against the encoder's epoch (probe records of one or more runs' epoch
    checkpoints, :func:`t2i_lib.metrics.encoder_probe.probe_checkpoint`), one panel per run, chance levels dashed.
    Records that carry the text variance share get a second row: each attribute's share of the sentence
    embeddings' variance against the epoch."""
    plt = figures._plt()
    if not records:
        raise ValueError("no probe records to draw")
    runs: dict[str, list[dict]] = {}
    for rec in records:
        runs.setdefault(rec["run_id"], []).append(rec)
    shares = all("text_variance_share" in a for r in records for a in r["attributes"].values())
    rows = 2 if shares else 1
    fig, axes = plt.subplots(rows, len(runs), figsize=(max(6.0, 5.0 * len(runs)), 3.8 * rows), squeeze=False)
    for col, (run_id, recs) in enumerate(runs.items()):
        ax = axes[0][col]
        recs = sorted(recs, key=lambda r: r["encoder_epoch"])
        epochs = [r["encoder_epoch"] + 1 for r in recs]  # checkpoint of epoch index e: after e + 1 epochs
        for name in recs[0]["attributes"]:
            line, = ax.plot(epochs, [100 * r["attributes"][name]["retrieval_agreement"] for r in recs], marker="o",
                            markersize=3, label=name)
            ax.axhline(100 * recs[0]["attributes"][name]["retrieval_chance"], color=line.get_color(), linestyle=":",
                       linewidth=1)
        ax.set_ylim(0, 100)
        ax.set_xlabel("epochs trained")
        ax.set_ylabel("caption-to-image retrieval agrees (%)")
        ax.set_title(run_id, fontsize=9)
        ax.legend(fontsize=8, title="dotted: chance", title_fontsize=7)
        if shares:
            ax = axes[1][col]
            for name in recs[0]["attributes"]:
                ax.plot(epochs, [100 * r["attributes"][name]["text_variance_share"] for r in recs], marker="o",
                        markersize=3, label=name)
            ax.set_ylim(0, None)
            ax.set_xlabel("epochs trained")
            ax.set_ylabel("share of sentence-embedding variance (%)")
            ax.set_title("how large each attribute's direction is", fontsize=9)
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
