"""The data report of notebook 00: summary, sample grid with captions, caption lengths, wording diversity, and for
the synthetic datasets how evenly the ground-truth attributes are spread and how often captions state each."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from ..data.dataset import dataset_summary, load_vocab, read_manifest, read_records
from ..data.images import load_rgb
from ..data.stats import (attribute_balance, caption_lengths, length_stats, mention_rates, word_counts,
                          wording_diversity)
from ..utils.io import write_json
from . import figures


def preview_figure(root: str | Path, split: str = "train", n: int = 8, captions_shown: int = 3, seed: int = 0):
    """A grid of ``n`` images of ``split`` with ``captions_shown`` of their captions each (seeded choice)."""
    root = Path(root)
    recs = [r for r in read_records(root) if r["split"] == split]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(recs), size=min(n, len(recs)), replace=False).tolist())
    imgs = [np.asarray(load_rgb(root / recs[i]["image"])) for i in pick]
    caps = [recs[i]["captions"][:captions_shown] for i in pick]
    return figures.image_caption_grid(imgs, caps, ncols=4, title=f"{read_manifest(root)['name']} ({split})")


def sibling_captions(root: str | Path, index: int = 0, split: str = "train") -> list[str]:
    """All captions of one image: how differently one picture is described."""
    recs = [r for r in read_records(root) if r["split"] == split]
    return list(recs[index % len(recs)]["captions"])


def dataset_report(root: str | Path, out_dir: str | Path, n_preview: int = 8, seed: int = 0,
                   max_words: int = 18, cfg=None) -> dict:
    """Compute the dataset statistics and write ``data_summary.json`` plus the figures under ``out_dir``.

    ``cfg`` (a resolved :class:`~t2i_lib.config.Config`) is recorded in the JSON with its hash.

    Returns ``{"summary", "lengths", "diversity", "top_words", "attributes", "mentions", "files"}``
    (``attributes``/``mentions``: :func:`~t2i_lib.data.stats.attribute_balance` and
    :func:`~t2i_lib.data.stats.mention_rates`, empty for photograph datasets).
    """
    root, out_dir = Path(root), Path(out_dir)
    m = read_manifest(root)
    recs = read_records(root, m)
    vocab = load_vocab(root, m)
    summary = dataset_summary(root)
    lengths = length_stats(recs, max_words)
    diversity = wording_diversity(recs, seed=seed)
    top = [(vocab.idx_to_word[i], c) for i, c in word_counts(recs).most_common(15)]
    lens = caption_lengths(recs)
    fig_dir = out_dir / "figures"
    files = {
        "preview": figures.save(preview_figure(root, "train", n_preview, seed=seed), fig_dir / "00_samples.png"),
        "lengths": figures.save(
            figures.histogram(lens, "caption length (tokens)", f"{m['name']}: caption lengths",
                              vline=max_words + 0.5, vlabel=f"max_words = {max_words}",
                              bins=np.arange(0.5, lens.max() + 1.5)),
            fig_dir / "00_caption_lengths.png"),
        "diversity": figures.save(
            figures.bar(["sibling captions", "unrelated captions"],
                        [diversity["sibling_jaccard"], diversity["unrelated_jaccard"]],
                        "mean Jaccard of token sets", "How alike are captions of one image?"),
            fig_dir / "00_wording_diversity.png"),
    }
    record = {"lib_version": __version__, "dataset_root": str(root), "summary": summary, "lengths": lengths,
              "diversity": diversity, "top_words": top, "attributes": attribute_balance(recs, m.get("attributes")),
              "mentions": mention_rates(recs), "files": {k: str(v) for k, v in files.items()},
              "seed": seed, "config": cfg.to_dict() if cfg is not None else None,
              "config_hash": cfg.hash if cfg is not None else None}
    files["json"] = write_json(out_dir / "data_summary.json", record)
    record["files"]["json"] = str(files["json"])
    return record


def attribute_table(report: dict):
    """One row per ground-truth attribute of a :func:`dataset_report`: its values, the rarest and commonest value's
    share of the images, the normalised entropy (1 = uniform) and the share of captions that state it.  An empty
    frame with a note for datasets without attributes (photographs)."""
    import pandas as pd

    att, men = report.get("attributes") or {}, report.get("mentions") or {}
    if not att:
        return pd.DataFrame({"note": ["no ground-truth attributes (photograph dataset)"]})
    rows = [{"attribute": k, "values": len(v["counts"]), "rarest value": f"{100 * v['share_min']:.1f} %",
             "commonest value": f"{100 * v['share_max']:.1f} %", "entropy": round(v["entropy"], 3),
             "stated by captions": f"{100 * men[k]:.0f} %" if k in men else "—"} for k, v in att.items()]
    return pd.DataFrame(rows).set_index("attribute")
