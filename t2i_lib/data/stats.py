"""Dataset statistics for notebooks and reports: caption lengths, vocabulary use, wording diversity.

Wording diversity is the paper's motivation made measurable: captions of one image are worded differently
(CUB: ten annotators per bird), so a generator conditioned on one caption may draw a different picture from a
paraphrase.  :func:`wording_diversity` compares the token sets of *sibling* captions (same image) with those of
*unrelated* captions (different images) through their Jaccard similarity.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

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
