"""What a DAMSM encoder pair sees of each attribute of a synthetic dataset (caption-shapes, caption-scenes).

R-precision and the consistency gaps judge generated images through a DAMSM; they can only reward an attribute
the encoders represent.  On the real test images of a synthetic dataset, per attribute (colour, position, shape,
size, ...):

- **retrieval agreement**: for every test caption that states the attribute, the test image whose global feature
  is most similar to the caption's sentence embedding; the share of those images that have the caption's value.
  Chance is what a random image would give: sum over values of (share of captions with the value) x (share of
  images with it);
- **linear probes**: a softmax regression trained on three quarters of the (L2-normalised) image features, resp.
  sentence embeddings, and scored on the other quarter, against the majority-class rate.  A low image probe with
  a high text probe says the image encoder is what misses the attribute;
- **text variance share**: the share of the raw sentence embeddings' variance that lies between the attribute's
  values (between-class over total sum of squares).  Retrieval and probes only ask whether an attribute can be
  read; a GAN conditioned on the raw embedding also feels how *large* its direction is.  An attribute can stay
  perfectly retrievable while its share shrinks to a few per cent, and a generator then learns it late or not at
  all (the demo's DAMSM and position: ``docs/evaluation.md``).

Everything is computed from the split's real images and captions; no GAN is involved.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def retrieval_agreement(sentence: "np.ndarray", owner: Sequence[int], image: "np.ndarray",
                        values: Sequence[int], mentioned: Sequence[bool]) -> tuple[float, float]:
    """(agreement, chance) of caption -> top-1 image retrieval for one attribute.

    ``sentence`` N_caps x D and ``image`` N_img x D (any scale: both are L2-normalised here); ``owner[c]`` the image
    of caption c; ``values[i]`` the attribute's value on image i; ``mentioned[c]`` whether caption c states it.
    """
    s = _normalise(np.asarray(sentence, dtype=np.float64))
    im = _normalise(np.asarray(image, dtype=np.float64))
    owner, values, mentioned = np.asarray(owner), np.asarray(values), np.asarray(mentioned, dtype=bool)
    if not mentioned.any():
        raise ValueError("no caption states the attribute")
    top = _top1(s[mentioned], im)
    wanted = values[owner[mentioned]]
    agreement = float((values[top] == wanted).mean())
    img_share = {v: float(np.mean(values == v)) for v in np.unique(values)}
    cap_vals, cap_counts = np.unique(wanted, return_counts=True)
    chance = float(sum(c / len(wanted) * img_share.get(v, 0.0) for v, c in zip(cap_vals, cap_counts)))
    return agreement, chance


def linear_probe(features: "np.ndarray", labels: Sequence[int], seed: int = 0, steps: int = 300,
                 lr: float = 0.05) -> tuple[float, float]:
    """(held-out accuracy, majority-class rate of the held-out quarter) of a softmax regression on ``features``
    (L2-normalised here), trained with Adam for ``steps`` full-batch steps on a seeded three quarters.  NumPy: the
    problem is small, and torch's thread pool only adds overhead (and stalls beside other busy processes)."""
    x = _normalise(np.asarray(features, dtype=np.float64))
    y = np.asarray(labels, dtype=np.int64)
    n = len(y)
    if n < 8 or len(x) != n:
        raise ValueError(f"need at least 8 items with one label each, got {len(x)} features and {n} labels")
    order = np.random.default_rng(int(seed)).permutation(n)
    train, test = order[: n * 3 // 4], order[n * 3 // 4:]
    n_cls = int(y.max()) + 1
    xt, onehot = np.hstack([x[train], np.ones((len(train), 1))]), np.eye(n_cls)[y[train]]
    w = np.zeros((x.shape[1] + 1, n_cls))
    m, v = np.zeros_like(w), np.zeros_like(w)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        z = xt @ w
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = xt.T @ (p - onehot) / len(train)  # gradient of the mean cross-entropy
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    pred = (np.hstack([x[test], np.ones((len(test), 1))]) @ w).argmax(axis=1)
    majority = float(np.bincount(y[test]).max() / len(test))
    return float((pred == y[test]).mean()), majority


def variance_share(features: "np.ndarray", labels: Sequence[int]) -> float:
    """Between-class share of the total variance of ``features`` (N x D, used as they are) grouped by ``labels``:
    sum over classes of n_k |mean_k - mean|^2, over sum over items of |x_i - mean|^2.  1 when every item sits on its
    class mean, 0 when the class means coincide; unchanged by scaling or shifting the features."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need N x D features and N labels (N >= 2), got {x.shape} and {y.shape}")
    total = float(((x - x.mean(axis=0)) ** 2).sum())
    if total == 0.0:
        raise ValueError("the features do not vary")
    return between_class_scatter(x, y) / total


def between_class_scatter(x: "np.ndarray", y: "np.ndarray") -> float:
    """Sum over the classes of ``y`` of n_k |mean_k - mean|^2 for the rows of ``x`` (N x D, float64)."""
    mu = x.mean(axis=0)
    return sum(float((y == k).sum()) * float(((x[y == k].mean(axis=0) - mu) ** 2).sum()) for k in np.unique(y))


def caption_owners(records: Sequence[dict], offsets: Sequence[int]) -> tuple["np.ndarray", list]:
    """For a sentence table laid out by ``offsets`` (:func:`~t2i_lib.metrics.r_precision.sentence_table`): the index
    of each caption's record, and each caption's set of stated attributes (``mentions``)."""
    owner = np.concatenate([[i] * (offsets[i + 1] - offsets[i]) for i in range(len(records))]).astype(int)
    return owner, [m for r in records for m in r["mentions"]]


def probe_encoders(text_encoder, image_encoder, dataset, device, seed: int = 0,
                   batch_size: int = 200) -> dict[str, Any]:
    """Per attribute of ``dataset`` (a synthetic CaptionDataset with ``attributes`` and ``mentions`` per record):
    retrieval agreement and both linear probes, each with its chance level, and the text variance share, plus the
    caption -> own-image top-1 rate.  Every caption of every image is used."""
    from .r_precision import real_image_codes, sentence_table

    recs = dataset.records
    if not recs or not isinstance(recs[0].get("attributes"), dict) or recs[0].get("mentions") is None:
        raise ValueError("probe_encoders needs a synthetic dataset whose records carry attributes and mentions")
    table, offsets = sentence_table(text_encoder, dataset, device, seed=seed)
    image = _normalise(real_image_codes(image_encoder, dataset, device, batch_size).numpy().astype(np.float64))
    raw = table.numpy().astype(np.float64)
    sentence = _normalise(raw)
    owner, mentions = caption_owners(recs, offsets)
    own = _top1(sentence, image)
    out: dict[str, Any] = {"n_images": len(recs), "n_captions": len(owner),
                           "caption_to_own_image_top1": float((own == owner).mean()), "attributes": {}}
    for name in recs[0]["attributes"]:
        values = np.array([r["attributes"][name] for r in recs])
        stated = np.array([name in m for m in mentions])
        if not stated.any():
            continue
        agree, chance = retrieval_agreement(sentence, owner, image, values, stated)
        img_acc, img_major = linear_probe(image, values, seed)
        txt_acc, txt_major = linear_probe(sentence[stated], values[owner[stated]], seed)
        out["attributes"][name] = {"retrieval_agreement": agree, "retrieval_chance": chance,
                                   "image_probe": img_acc, "image_probe_majority": img_major,
                                   "text_probe": txt_acc, "text_probe_majority": txt_major,
                                   "text_variance_share": variance_share(raw[stated], values[owner[stated]]),
                                   "n_values": int(values.max()) + 1, "n_captions_stating": int(stated.sum())}
    return out


def _normalise(x: "np.ndarray") -> "np.ndarray":
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def probe_checkpoint(path, dataset, device, role: str = "") -> dict[str, Any]:
    """:func:`probe_encoders` for one DAMSM checkpoint (``best.pt`` of a pretraining run) on ``dataset``, seeded by
    the checkpoint's ``eval.eval_seed``; the record also names the run (``run_id``, ``config_hash``,
    ``damsm_seed``, ``encoder_epoch``, the validation R-precision that selected it) and ``role`` when given."""
    from ..config import from_dict
    from ..train.damsm import load_encoders

    text, image, meta = load_encoders(path, device)
    cfg = from_dict(meta["config"])
    rec = probe_encoders(text, image, dataset, device, seed=cfg.eval.eval_seed)
    rec.update({"run_id": cfg.run_id, "config_hash": cfg.hash, "damsm_seed": cfg.damsm.seed,
                "encoder_epoch": meta.get("epoch"), "dataset": cfg.data.dataset, "split": dataset.split,
                "validation_r_precision": (meta.get("best") or {}).get("r_precision")})
    if role:
        rec["role"] = role
    return rec


def _top1(queries: "np.ndarray", keys: "np.ndarray", block: int = 4096) -> "np.ndarray":
    """Index of the key with the largest dot product for each query, a block of queries at a time."""
    return np.concatenate([(queries[k:k + block] @ keys.T).argmax(axis=1) for k in range(0, len(queries), block)])
