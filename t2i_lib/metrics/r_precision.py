"""R-precision, exactly as the reference protocol (DM-GAN's ``sampling``; docs/evaluation.md#r-precision).

Per query image (real, to score an encoder, or generated, to score a generator):

1. its DAMSM global image feature;
2. candidates: the sentence embedding of its ground-truth caption plus ``n_candidates - 1`` (99) captions of
   *other* images whose class id differs (CUB: other species; COCO: any other image), one random caption each;
3. cosine similarity of the image feature with the candidates; a hit when the ground truth scores highest
   (ties count for the ground truth, as ``argmax`` over [true, mismatched...]);
4. the hit vector is shuffled and split into ``n_folds`` folds (10 x 3,000 for 30,000 images); mean and std over
   folds.  ``off_by_one=True`` reproduces the reference's use of only the first ``fold - 1`` hits of each fold.

Every random choice (mismatched images, their captions, the fold shuffle) comes from generators seeded by the
protocol seed and the query index, so the result does not depend on the batch size used to compute features.
Values are fractions in [0, 1]; tables show them x 100.  The encoder that scored is recorded with the result.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..utils.seed import item_rng

R_PRECISION = "r_precision"
R_PRECISION_STD = "r_precision_std"


def mismatched_candidates(class_ids: Sequence[int], n_mismatch: int, seed: int,
                          query_classes: Sequence[int] | None = None) -> np.ndarray:
    """For each query, ``n_mismatch`` indices into ``class_ids`` whose class differs from the query's.

    ``query_classes`` defaults to ``class_ids`` (queries are the dataset items themselves).  Drawn without
    replacement when enough other-class items exist, else with replacement.  Returns Q x n_mismatch int64.
    """
    cls = np.asarray(class_ids)
    qcls = cls if query_classes is None else np.asarray(query_classes)
    out = np.empty((len(qcls), n_mismatch), dtype=np.int64)
    by_class: dict[int, np.ndarray] = {}
    for q, c in enumerate(qcls):
        c = int(c)
        if c not in by_class:
            by_class[c] = np.flatnonzero(cls != c)
        pool = by_class[c]
        if pool.size == 0:
            raise ValueError(f"query {q}: no item of another class to draw mismatched captions from")
        rng = item_rng(seed, 7919, q)
        out[q] = rng.choice(pool, size=n_mismatch, replace=pool.size < n_mismatch)
    return out


def hits_from_features(img_codes, true_sent, mismatch_sent) -> np.ndarray:
    """img_codes Q x D, true_sent Q x D, mismatch_sent Q x M x D -> boolean hits (Q,)."""
    import torch

    img = torch.nn.functional.normalize(torch.as_tensor(img_codes, dtype=torch.float64), dim=-1)
    cand = torch.cat([torch.as_tensor(true_sent, dtype=torch.float64)[:, None],
                      torch.as_tensor(mismatch_sent, dtype=torch.float64)], dim=1)
    cand = torch.nn.functional.normalize(cand, dim=-1)
    sims = torch.einsum("qd,qmd->qm", img, cand)
    return (sims.argmax(dim=1) == 0).numpy()


def fold_stats(hits: np.ndarray, n_folds: int = 10, seed: int = 0, off_by_one: bool = False) -> dict[str, Any]:
    """Shuffle ``hits`` (seeded), split into ``n_folds`` equal folds (remainder dropped); mean and std over folds."""
    hits = np.asarray(hits, dtype=np.float64)
    n = hits.size
    fold = n // n_folds
    if fold < 1 + int(off_by_one):
        raise ValueError(f"{n} queries cannot make {n_folds} folds")
    perm = np.random.default_rng(seed).permutation(n)
    h = hits[perm]
    use = fold - 1 if off_by_one else fold
    scores = np.array([h[k * fold: k * fold + use].mean() for k in range(n_folds)])
    return {R_PRECISION: float(scores.mean()), R_PRECISION_STD: float(scores.std()), "folds": scores.tolist(),
            "n_queries": int(n), "fold_size": int(use), "n_folds": int(n_folds), "off_by_one": bool(off_by_one)}


def sentence_table(text_encoder, dataset, device, batch_size: int = 256, seed: int = 0):
    """Sentence embeddings of every caption of ``dataset`` (a CaptionDataset): (embeddings N_caps x D, offsets).

    Long captions are reduced to ``max_words`` with the dataset's mode; ``subsample`` draws from a generator seeded
    by (seed, item, caption), so the table is reproducible.  ``offsets[i] + c`` indexes caption ``c`` of item ``i``.
    """
    import torch

    from ..data.text import fixed_length

    ids, lens, offsets = [], [], [0]
    for i, rec in enumerate(dataset.records):
        for c, toks in enumerate(rec["tokens"]):
            arr, n = fixed_length(toks, dataset.max_words, dataset.long_caption_mode, item_rng(seed, 104729, i, c))
            ids.append(arr)
            lens.append(n)
        offsets.append(len(ids))
    ids_t, lens_t = torch.from_numpy(np.stack(ids)), torch.tensor(lens)
    out = []
    was_training = text_encoder.training
    text_encoder.eval()
    with torch.no_grad():
        for k in range(0, len(ids), batch_size):
            _, s = text_encoder(ids_t[k:k + batch_size].to(device), lens_t[k:k + batch_size].to(device))
            out.append(s.float().cpu())
    text_encoder.train(was_training)
    return torch.cat(out), np.asarray(offsets)


def r_precision(img_codes, item_index: Sequence[int], caption_index: Sequence[int], sent_table, offsets,
                class_ids: Sequence[int], n_candidates: int = 100, n_folds: int = 10, seed: int = 0,
                off_by_one: bool = False) -> dict[str, Any]:
    """R-precision of query images whose features are ``img_codes`` (Q x D).

    Query q was made from (or is) dataset item ``item_index[q]`` with caption ``caption_index[q]``; the candidates
    come from ``sent_table``/``offsets`` (:func:`sentence_table`) and ``class_ids`` (per dataset item).
    """
    import torch

    item_index = np.asarray(item_index, dtype=np.int64)
    caption_index = np.asarray(caption_index, dtype=np.int64)
    class_ids = np.asarray(class_ids)
    offsets = np.asarray(offsets)
    n_caps = np.diff(offsets)
    true = sent_table[torch.from_numpy(offsets[item_index] + caption_index)]
    mis_items = mismatched_candidates(class_ids, n_candidates - 1, seed, query_classes=class_ids[item_index])
    mis_caps = np.empty_like(mis_items)
    for q in range(len(item_index)):
        rng = item_rng(seed, 15485863, q)
        mis_caps[q] = (rng.random(mis_items.shape[1]) * n_caps[mis_items[q]]).astype(np.int64)
    mis = sent_table[torch.from_numpy(offsets[mis_items] + mis_caps)]
    hits = hits_from_features(img_codes, true, mis)
    out = fold_stats(hits, n_folds, seed, off_by_one)
    out.update({"n_candidates": int(n_candidates), "seed": int(seed)})
    return out


def real_image_codes(image_encoder, dataset, device, batch_size: int = 64, progress: bool = False):
    """The DAMSM global feature (CPU float tensor N x D) of every real image of ``dataset`` (a CaptionDataset), in
    evaluation mode, in batches of ``batch_size``; the encoder's train/eval mode is restored afterwards."""
    import torch

    from ..utils.logging import progress as bar

    n = len(dataset)
    was_training = image_encoder.training
    image_encoder.eval()
    codes = []
    with torch.no_grad():
        for k in bar(range(0, n, batch_size), enabled=progress, desc="DAMSM image features"):
            imgs = torch.stack([dataset.load_and_transform(i)[-1] for i in range(k, min(n, k + batch_size))])
            codes.append(image_encoder(imgs.to(device))[1].float().cpu())
    image_encoder.train(was_training)
    return torch.cat(codes)


def real_image_r_precision(text_encoder, image_encoder, dataset, device, n_candidates: int = 100,
                           n_folds: int = 10, seed: int = 0, batch_size: int = 64, off_by_one: bool = False,
                           encoder_name: str = "", progress: bool = False) -> dict[str, Any]:
    """R-precision of *real* images of ``dataset`` (one caption per image, drawn with ``seed``): scores an encoder.

    ``dataset`` is a CaptionDataset (no augmentation); its image size feeds the image encoder.
    """
    table, offsets = sentence_table(text_encoder, dataset, device, seed=seed)
    n = len(dataset)
    caps = np.array([int(item_rng(seed, 31, i).integers(len(r["tokens"]))) for i, r in enumerate(dataset.records)])
    codes = real_image_codes(image_encoder, dataset, device, batch_size, progress)
    out = r_precision(codes, np.arange(n), caps, table, offsets, dataset.class_ids, n_candidates,
                      n_folds, seed, off_by_one)
    out.update({"encoder": encoder_name, "queries": "real", "split": dataset.split})
    return out
