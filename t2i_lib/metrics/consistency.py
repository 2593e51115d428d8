"""Semantic consistency, the paper's central claim measured directly, and attribute accuracy (synthetic data).

**Sibling-caption consistency.**  For each of ``n_images`` test images, generate one image from each of ``k``
(>= 2) of its captions and, as controls, from the captions of ``k`` *other* test images (different class), all
with the same noise per group.  With image features f (unit-normalised), report

- ``sibling_sim``   mean cosine similarity between images generated from captions of the same picture,
- ``unrelated_sim`` mean cosine similarity between images generated from captions of different pictures,
- ``gap`` = sibling_sim - unrelated_sim (higher: the generator depends on *what* is described, not on the wording),
  with a bootstrap 95 % confidence interval over groups (``gap_ci95``).

**Calibration.**  Raw cosines of these features are dominated by one direction every image shares (sibling and
unrelated DAMSM cosines of 0.995-0.9999 were measured, so gaps lived at 1e-4).  The cosines are therefore taken on
features *centred by the mean feature of the evaluated images* (the sibling and unrelated sets pooled): the shared
direction is removed and what is left is the part of each image that differs between images.  The calibrated gap
is then relative, (sibling - unrelated) / (1 - unrelated): the share of the dissimilarity of unrelated-caption
images that captions of the same picture remove (:func:`relative_gap`).  A plain difference would still shrink
towards 0 whenever the noise, which both sets of a group share, dominates the features.  A text-blind generator
scores exactly 0 (its sibling and unrelated sets are the same images); one that draws what its caption describes
scores clearly positive, 1 when siblings are identical (tests).  The centre is the evaluated *generated* set's own mean rather than the
real images' mean because a generator far from the real images (early training) would otherwise keep a common
offset (its mean minus the real mean) that saturates the cosines again.  The uncentred gap is kept as ``gap_raw``.
``sibling_sim`` alone has no "better" direction: a text-blind generator with shared noise maximises it.

Features: the DAMSM global image feature of the training encoder (the paper's protocol), of the held-out
evaluation encoder (the judge, :func:`t2i_lib.train.damsm.judge_config_for`), and the FID Inception pool3 feature;
all reported.  Fake-to-fake should raise ``sibling_sim`` without raising ``unrelated_sim``.

**Attribute accuracy** (synthetic ``caption-shapes`` / ``caption-scenes`` only).  A small classifier trained on real synthetic training images
(its own accuracy on real test images is reported) predicts shape/colour/position/size of generated images; each
generated image is scored only on the attributes its caption states (``mentions``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch


log = logging.getLogger(__name__)

CONSISTENCY_GAP_DAMSM = "consistency_gap_damsm"
CONSISTENCY_GAP_INCEPTION = "consistency_gap_inception"
ATTRIBUTE_ACCURACY = "attribute_accuracy"


# ------------------------------------------------------------------------------------------------------------
# Sibling-caption consistency
# ------------------------------------------------------------------------------------------------------------
def consistency_plan(dataset, n_images: int, k: int, seed: int) -> dict[str, np.ndarray]:
    """Which captions to generate: for group g, ``k`` sibling captions of item ``items[g]`` and ``k`` unrelated
    captions (one caption of each of ``k`` other-class items).  Returns arrays of shape G x k."""
    n = len(dataset)
    cls = dataset.class_ids
    rng = np.random.default_rng([seed, 5])
    multi = np.array([i for i in range(n) if len(dataset.records[i]["tokens"]) >= k])
    if multi.size == 0:
        raise ValueError(f"no test image has {k} captions")
    items = rng.choice(multi, size=min(n_images, multi.size), replace=False)
    sib_caps = np.stack([rng.choice(len(dataset.records[i]["tokens"]), size=k, replace=False) for i in items])
    unrel_items, unrel_caps = [], []
    for g, i in enumerate(items):
        pool = np.flatnonzero(cls != cls[i])
        others = rng.choice(pool, size=k, replace=pool.size < k)
        unrel_items.append(others)
        unrel_caps.append([int(rng.integers(len(dataset.records[o]["tokens"]))) for o in others])
    return {"items": items, "sib_items": np.repeat(items[:, None], k, axis=1), "sib_caps": sib_caps,
            "unrel_items": np.array(unrel_items), "unrel_caps": np.array(unrel_caps)}


def group_similarities(feats: torch.Tensor, center: torch.Tensor | None = None) -> np.ndarray:
    """feats G x k x D -> per group, the mean cosine similarity over its k(k-1)/2 pairs (features minus ``center``
    first, when given)."""
    f = feats.double()
    if center is not None:
        f = f - center.double().reshape(1, 1, -1)
    f = torch.nn.functional.normalize(f, dim=-1)
    sims = torch.einsum("gid,gjd->gij", f, f)
    k = f.shape[1]
    iu = torch.triu_indices(k, k, offset=1)
    return sims[:, iu[0], iu[1]].mean(1).numpy()


def pairwise_group_similarity(feats: torch.Tensor, center: torch.Tensor | None = None) -> float:
    """feats G x k x D -> mean cosine similarity over the k(k-1)/2 pairs of each group."""
    return float(group_similarities(feats, center).mean())


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of the mean of ``values`` (resampling them with replacement); None when
    ``n_boot`` is 0 or there are fewer than 2 values."""
    v = np.asarray(values, dtype=np.float64)
    if n_boot <= 0 or v.size < 2:
        return None
    rng = np.random.default_rng([int(seed) % (2**63), 2718])
    means = v[rng.integers(0, v.size, size=(int(n_boot), v.size))].mean(1)
    a = (1.0 - level) / 2.0
    return [float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))]


MIN_ROOM = 1e-6  # 1 - unrelated similarity below this: no caption dependence measurable on float32 features


def relative_gap(sibling_sim: float, unrelated_sim: float) -> float:
    """(sibling - unrelated) / (1 - unrelated): the share of the unrelated-caption dissimilarity that captions of the
    same picture remove.  0 for a text-blind generator, 1 when siblings are identical.  0 when images of unrelated
    captions are identical up to :data:`MIN_ROOM` (the features are float32: a smaller caption dependence cannot be
    told from rounding, and its ratio would be noise)."""
    room = 1.0 - unrelated_sim
    return float((sibling_sim - unrelated_sim) / room) if room > MIN_ROOM else 0.0


def consistency_scores(sib_feats: torch.Tensor, unrel_feats: torch.Tensor, center: str | torch.Tensor | None = None,
                       n_boot: int = 0, seed: int = 0) -> dict[str, Any]:
    """Sibling / unrelated similarity and their gap from features G x k x D of each set.

    ``center=None``: raw cosines, ``gap`` = sibling - unrelated (the uncalibrated metric).  ``center="pooled"`` (the
    calibrated metric) or a D-vector: cosines of centred features, and ``gap`` = :func:`relative_gap` of the means,
    so that it does not shrink when the noise, which a group's sibling and unrelated images share, dominates the
    features (both similarities then sit near 1 and their plain difference near 0); ``gap_diff`` keeps the plain
    difference of the centred similarities.  ``gap_ci95``: percentile bootstrap interval of ``gap`` over groups
    (``n_boot`` resamples of the groups, seeded).  ``gap_raw``: the plain difference of uncentred cosines."""
    c = None
    if isinstance(center, str):
        if center != "pooled":
            raise ValueError(f"center must be None, 'pooled' or a vector, got {center!r}")
        c = torch.cat([sib_feats.flatten(0, 1), unrel_feats.flatten(0, 1)]).double().mean(0)
    elif center is not None:
        c = center
    s, u = group_similarities(sib_feats, c), group_similarities(unrel_feats, c)

    def stat(idx):
        ms, mu = float(s[idx].mean()), float(u[idx].mean())
        return ms - mu if c is None else relative_gap(ms, mu)

    g = s.size
    ci = None
    if n_boot > 0 and g >= 2:
        rng = np.random.default_rng([int(seed) % (2**63), 2718])
        boots = np.array([stat(rng.integers(0, g, size=g)) for _ in range(int(n_boot))])
        ci = [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]
    every = np.arange(g)
    out: dict[str, Any] = {"sibling_sim": float(s.mean()), "unrelated_sim": float(u.mean()), "gap": stat(every),
                           "gap_diff": float((s - u).mean()), "gap_ci95": ci, "n_groups": int(g)}
    if c is not None:
        out["gap_raw"] = float((group_similarities(sib_feats) - group_similarities(unrel_feats)).mean())
    else:
        out["gap_raw"] = out["gap"]
    return out


def generated_groups(generate_batch: Callable[[np.ndarray, np.ndarray, torch.Tensor], torch.Tensor],
                     plan: dict, z_dim: int, eval_seed: int, batch_groups: int = 16):
    """Generate sibling and unrelated groups; noise is shared within a group (seed = eval_seed + group).

    ``generate_batch(items, caps, z) -> images`` (float [-1, 1]); returns (sib G x k x 3 x H x W, unrel ...).
    """
    from .sampling import sample_noise

    G, k = plan["sib_items"].shape
    z = sample_noise(range(G), z_dim, eval_seed)
    sib, unrel = [], []
    for a in range(0, G, batch_groups):
        b = min(G, a + batch_groups)
        zz = z[a:b].repeat_interleave(k, dim=0)
        sib.append(generate_batch(plan["sib_items"][a:b].ravel(), plan["sib_caps"][a:b].ravel(), zz))
        unrel.append(generate_batch(plan["unrel_items"][a:b].ravel(), plan["unrel_caps"][a:b].ravel(), zz))
    sib_t, unrel_t = torch.cat(sib), torch.cat(unrel)
    return sib_t.reshape(G, k, *sib_t.shape[1:]), unrel_t.reshape(G, k, *unrel_t.shape[1:])


# ------------------------------------------------------------------------------------------------------------
# Attribute classifier
# ------------------------------------------------------------------------------------------------------------
def train_attribute_classifier(dataset_root: str | Path, device, epochs: int = 5, batch_size: int = 64,
                               width: int = 32, lr: float = 2e-3, seed: int = 0, max_train: int = 0,
                               progress: bool | str = "auto", input_size: int = 64):
    """Train the attribute classifier on real training images; returns (model in eval mode, report dict with its
    per-attribute accuracy on real *test* images)."""
    from ..data.dataset import CaptionDataset, make_loader
    from ..models.attribute_classifier import AttributeClassifier
    from ..utils.logging import progress as bar

    train = CaptionDataset(dataset_root, "train", (64,), seed=seed)
    test = CaptionDataset(dataset_root, "test", (64,), seed=seed)
    schema = train.attribute_schema
    if not schema:
        raise ValueError(f"{dataset_root} has no attributes (attribute accuracy needs a synthetic dataset: caption-shapes or caption-scenes)")
    torch.manual_seed(seed)
    model = AttributeClassifier({k: len(v) for k, v in schema.items()}, width=width,
                                input_size=input_size).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if max_train:
        train.records = train.records[:max_train]
    t0 = time.time()
    for epoch in range(epochs):
        train.set_epoch(epoch)
        model.train()
        for batch in bar(make_loader(train, batch_size, True, seed * 1000 + epoch), enabled=progress,
                         desc=f"attribute classifier epoch {epoch}", leave=False):
            logits = model(batch["images"][-1].to(device))
            loss = sum(torch.nn.functional.cross_entropy(logits[a], batch["attributes"][a].to(device))
                       for a in schema)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    correct = {a: 0 for a in schema}
    n = 0
    with torch.no_grad():
        for batch in make_loader(test, 128, False, 0):
            logits = model(batch["images"][-1].to(device))
            for a in schema:
                correct[a] += int((logits[a].argmax(1).cpu() == batch["attributes"][a]).sum())
            n += batch["images"][-1].shape[0]
    acc = {a: c / n for a, c in correct.items()}
    report = {"heads": {k: len(v) for k, v in schema.items()}, "width": width, "input_size": input_size,
              "real_test_accuracy": acc, "real_test_accuracy_mean": float(np.mean(list(acc.values()))),
              "n_test": n, "epochs": epochs, "seconds": time.time() - t0, "seed": seed}
    return model, report


@torch.no_grad()
def attribute_accuracy(classifier, images: torch.Tensor, attributes: Sequence[dict], mentions: Sequence[Sequence[str]],
                       device, batch_size: int = 256) -> dict[str, Any]:
    """Score generated ``images`` against the attributes their captions state.

    ``attributes[i]`` are the true attribute indices of the image whose caption made sample i and
    ``mentions[i]`` the attribute names that caption states.  Returns per-attribute and overall accuracy (pooled
    over the individual checks) and ``chance``: the accuracy of a uniform guess *pooled the same way* (the mean over
    the checks of 1 / classes of the checked attribute), which is what the pooled accuracy is to be read against.
    The classifier runs on ``batch_size`` images at a time, without gradients (the result does not depend on it).
    """
    if len(images) != len(attributes) or len(images) != len(mentions):
        raise ValueError(f"{len(images)} images, {len(attributes)} attribute records, {len(mentions)} mention lists")
    with torch.no_grad():
        parts = [classifier(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)]
    logits = {a: torch.cat([p[a].float().cpu() for p in parts]) for a in parts[0]} if parts else {}
    hits: dict[str, list[int]] = {}
    chance: list[float] = []
    for i, (attrs, ment) in enumerate(zip(attributes, mentions)):
        for a in ment:
            pred = int(logits[a][i].argmax())
            hits.setdefault(a, []).append(int(pred == int(attrs[a])))
            chance.append(1.0 / logits[a].shape[1])
    per = {a: float(np.mean(h)) for a, h in hits.items()}
    allh = [x for h in hits.values() for x in h]
    return {ATTRIBUTE_ACCURACY: float(np.mean(allh)) if allh else float("nan"), "per_attribute": per,
            "n_checks": len(allh), "chance": float(np.mean(chance)) if chance else float("nan")}
