"""Dataset statistics for notebooks and reports: caption lengths, vocabulary use, wording diversity.

Wording diversity is the paper's motivation made measurable: captions of one image are worded differently
(CUB: ten annotators per bird), so a generator conditioned on one caption may draw a different picture from a
paraphrase.  :func:`wording_diversity` compares the token sets of *sibling* captions (same image) with those of
*unrelated* captions (different images) through their Jaccard similarity.

Every function reads records as :func:`t2i_lib.data.dataset.read_records` returns them, so it works for any
canonical dataset; :func:`attribute_balance` and :func:`mention_rates` need the ground-truth ``attributes`` /
``mentions`` of the synthetic datasets (``caption-shapes``, ``caption-scenes``) and return ``{}`` without them.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

import numpy as np


def caption_lengths(records: Sequence[dict]) -> np.ndarray:
    return np.array([len(t) for r in records for t in r["tokens"]], dtype=np.int64)


def length_stats(records: Sequence[dict], max_words: int = 18) -> dict:
    lens = caption_lengths(records)
    return {"n_captions": int(lens.size), "mean": float(lens.mean()), "median": float(np.median(lens)),
            "p95": float(np.percentile(lens, 95)), "max": int(lens.max()), "min": int(lens.min()),
            f"frac_longer_than_{max_words}": float((lens > max_words).mean())}


def word_counts(records: Sequence[dict]) -> Counter:
    return Counter(i for r in records for t in r["tokens"] for i in t)


def _jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / max(1, len(sa | sb))


def wording_diversity(records: Sequence[dict], n_pairs: int = 2000, seed: int = 0) -> dict:
    """Jaccard similarity of token sets: sibling captions (same image) vs unrelated captions (other images).

    Returns means, the fraction of sibling pairs that are identical as token sets, and ``gap`` = sibling - unrelated.
    """
    rng = np.random.default_rng(seed)
    multi = [r for r in records if len(r["tokens"]) >= 2]
    if not multi or len(records) < 2:
        raise ValueError("wording_diversity needs images with >= 2 captions and >= 2 images")
    sib, unrel, identical = [], [], 0
    for _ in range(n_pairs):
        r = multi[int(rng.integers(len(multi)))]
        i, j = rng.choice(len(r["tokens"]), size=2, replace=False)
        s = _jaccard(r["tokens"][i], r["tokens"][j])
        sib.append(s)
        identical += s == 1.0
        a, b = rng.choice(len(records), size=2, replace=False)
        ra, rb = records[int(a)], records[int(b)]
        unrel.append(_jaccard(ra["tokens"][int(rng.integers(len(ra["tokens"])))],
                              rb["tokens"][int(rng.integers(len(rb["tokens"])))]))
    return {"sibling_jaccard": float(np.mean(sib)), "unrelated_jaccard": float(np.mean(unrel)),
            "gap": float(np.mean(sib) - np.mean(unrel)), "sibling_identical_frac": identical / n_pairs,
            "n_pairs": n_pairs}


def attribute_balance(records: Sequence[dict], schema: Mapping[str, Sequence[str]] | None = None) -> dict:
    """How evenly each ground-truth attribute takes its values, over the records that have ``attributes``.

    ``schema`` (the manifest's ``attributes``: name -> value names) names the values and fixes the set of values
    counted (unseen values count 0); without it the attribute names and value indices of the records are used.
    Per attribute: ``counts`` {value name: images}, ``share_min`` / ``share_max`` (fractions of the images) and
    ``entropy`` (normalised: 1 = uniform over the listed values, 0 = a single value).  ``{}`` when no record has
    attributes (photograph datasets).
    """
    rows = [r["attributes"] for r in records if r.get("attributes")]
    if not rows:
        return {}
    names = list(schema) if schema else sorted({k for a in rows for k in a})
    out = {}
    for name in names:
        seen = Counter(int(a[name]) for a in rows if name in a)
        values = list(schema[name]) if schema else [str(v) for v in range(max(seen, default=-1) + 1)]
        counts = np.array([seen.get(i, 0) for i in range(len(values))], dtype=np.float64)
        total = counts.sum()
        if total == 0:
            continue
        p = counts / total
        nz = p[p > 0]
        ent = float(-(nz * np.log(nz)).sum() / np.log(len(values))) if len(values) > 1 else 1.0
        out[name] = {"counts": {v: int(c) for v, c in zip(values, counts)}, "share_min": float(p.min()),
                     "share_max": float(p.max()), "entropy": ent, "n": int(total)}
    return out


def mention_rates(records: Sequence[dict]) -> dict[str, float]:
    """Fraction of captions that state each attribute (from the records' ``mentions``); ``{}`` without them."""
    ments = [m for r in records for m in r.get("mentions") or []]
    if not ments:
        return {}
    c = Counter(a for m in ments for a in m)
    order = list(dict.fromkeys(a for m in ments for a in m))
    return {a: c[a] / len(ments) for a in order}
