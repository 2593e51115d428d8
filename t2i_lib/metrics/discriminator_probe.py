"""What an SSA-GAN discriminator's conditional head sees of each attribute of a synthetic dataset.

A conditional GAN's generator learns an attribute only if its discriminator penalises a wrong one.  The probe asks
the trained discriminator directly, on real test images: for each image and each attribute, does it score the
image higher with one of the image's own captions than with a caption of another test image that differs from it
in exactly that attribute (and states it)?  ``own_beats_other`` is that fraction (ties count half): 0.5 is a head
blind to the attribute, 1.0 one that always prefers the true caption.  A control pairs each image with a caption of another
image with the *same* attributes: a head that reads the attributes (and not the wording) scores about 0.5 there.

    probe = discriminator_attribute_probe(D, text_encoder, test_dataset, device)
    probe["attributes"]["shape"]["own_beats_other"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CONTROL = "same attributes"


def _sentences(text_encoder, dataset, pairs, device, batch_size: int):
    """Sentence embeddings of (image index, caption index) pairs."""
    import torch

    out = []
    for s in range(0, len(pairs), batch_size):
        caps, lens = zip(*[dataset.encode_caption(int(i), int(c)) for i, c in pairs[s:s + batch_size]])
        with torch.no_grad():
            out.append(text_encoder(torch.from_numpy(np.stack(caps)).to(device), torch.tensor(lens).to(device))[1])
    return torch.cat(out)


def discriminator_attribute_probe(D, text_encoder, dataset, device, n_images: int = 1200, seed: int = 0,
                                  batch_size: int = 200) -> dict[str, Any]:
    """Per attribute (and for the same-attributes control): ``n`` images with a partner caption,
    ``own_beats_other``, and the mean logits with the own and the partner caption.

    ``D`` has ``D(images) -> features`` and ``D.cond_logits(features, sentences)`` (the SSA-GAN discriminator);
    ``dataset`` is a :class:`~t2i_lib.data.dataset.CaptionDataset` at D's image size.  The first ``n_images``
    items are probed, their partners drawn from the whole split; captions are drawn from a generator seeded by
    ``seed``."""
    import torch

    if not dataset.attribute_schema:
        raise ValueError("the discriminator probe needs a dataset with attributes (caption-shapes)")
    n = min(int(n_images), len(dataset))
    if n < 2:
        raise ValueError(f"the probe needs at least 2 images, got {n}")
    rng = np.random.default_rng(seed)
    names = list(dataset.attribute_schema)
    own = [(i, int(rng.integers(len(dataset.records[i]["tokens"])))) for i in range(n)]
    # Partners from the whole split (only their captions are needed), drawn in split order.
    partners: dict[str, list[tuple[int, int, int]]] = {}  # name -> (image, partner image, partner caption)
    for i in range(n):
        same = dataset.same_attribute_images(i)
        if same:
            j = same[int(rng.integers(len(same)))]
            partners.setdefault(CONTROL, []).append((i, j, int(rng.integers(len(dataset.records[j]["tokens"])))))
        for a in names:
            cands = dataset.one_attribute_partners(i, a)
            if cands:
                j, c = cands[int(rng.integers(len(cands)))]
                partners.setdefault(a, []).append((i, j, c))
    was_training = D.training
    D.eval()
    try:
        with torch.no_grad():
            feats = torch.cat([D(torch.stack([dataset.load_and_transform(i, 0)[-1]
                                              for i in range(s, min(s + batch_size, n))]).to(device))
                               for s in range(0, n, batch_size)])
            own_logits = D.cond_logits(feats, _sentences(text_encoder, dataset, own, device, batch_size)).cpu().numpy()
            out: dict[str, Any] = {}
            for name in [CONTROL] + names:
                rows = partners.get(name, [])
                if not rows:
                    out[name] = {"n": 0, "own_beats_other": None, "own_logit": None, "other_logit": None}
                    continue
                idx = np.array([r[0] for r in rows])
                other = D.cond_logits(feats[torch.as_tensor(idx)],
                                      _sentences(text_encoder, dataset, [(r[1], r[2]) for r in rows], device,
                                                 batch_size)).cpu().numpy()
                wins = np.mean(own_logits[idx] > other) + 0.5 * np.mean(own_logits[idx] == other)  # ties: half
                out[name] = {"n": len(rows), "own_beats_other": float(wins),
                             "own_logit": float(own_logits[idx].mean()), "other_logit": float(other.mean())}
    finally:
        D.train(was_training)
    return {"n_images": n, "seed": seed, "chance": 0.5, "control": out.pop(CONTROL), "attributes": out}


def probe_gan_checkpoint(path: str | Path, device, n_images: int = 1200, seed: int = 0) -> dict[str, Any]:
    """:func:`discriminator_attribute_probe` of an SSA-GAN checkpoint's discriminator with its run's text encoder
    on the test split of its dataset (made if missing), with the run's id, step, config hash and the residual gates
    of the discriminator's blocks (``gates``; 0 is a block reduced to its linear shortcut)."""
    from .. import __version__
    from ..config import from_dict
    from ..data.dataset import CaptionDataset
    from ..data.prepare import ensure_dataset
    from ..train import checkpoint as ck
    from ..train.damsm import encoder_path, load_encoders
    from ..train.gan import get_family

    c = ck.load(path, expect={"kind": "gan"})
    cfg = from_dict(c["config"])
    if c["family"] != "ssagan":
        raise ValueError(f"{path}: the discriminator probe reads SSA-GAN's conditional head, not {c['family']!r}")
    modules, _ = get_family(c["family"]).build(cfg)
    D = modules["D"]
    D.load_state_dict(c["state"]["D"])
    D.to(device)
    d = cfg.data
    test = CaptionDataset(ensure_dataset(cfg, progress=False), "test", (d.image_size,), 1, d.max_words, "truncate",
                          cfg.run.seed)
    text_enc, _, _ = load_encoders(encoder_path(cfg), device, vocab_hash=test.vocab.hash)
    probe = discriminator_attribute_probe(D, text_enc, test, device, n_images, seed)
    return {"run_id": cfg.run_id, "config_hash": cfg.hash, "step": c["step"], "lib_version": __version__,
            "gates": [blk.gamma.item() for blk in D.blocks], **probe}


def _check_run(cfg, steps: int, probe_every: int, what: str) -> None:
    if cfg.model.family != "ssagan" or cfg.data.dataset != "caption-shapes":
        raise ValueError(f"{what} on caption-shapes, not {cfg.model.family!r} on {cfg.data.dataset!r}")
    if steps < 1 or probe_every < 1:
        raise ValueError(f"steps and probe_every must be >= 1, got {steps} and {probe_every}")


def _endless(loader, dataset):
    """The loader's batches epoch after epoch, telling ``dataset`` each new epoch (its caption draws) first."""
    epoch = 0
    while True:
        yield from loader
        epoch += 1
        dataset.set_epoch(epoch)


def train_matching_head(cfg, device, steps: int, probe_every: int, n_probe_images: int = 600,
                        magp: bool = False, progress: bool = False) -> list[dict[str, Any]]:
    """A ceiling for the probe: a fresh SSA-GAN discriminator of ``cfg`` trained on caption matching of real
    training images alone (no generator): SSA-GAN's hinge with the own caption as positive and, as negatives, the
    next image's caption and an attribute negative (:meth:`~t2i_lib.data.dataset.CaptionDataset.attribute_negative`),
    with ``cfg``'s batch size, D learning rate and betas, its frozen text encoder, and MA-GP (``cfg``'s weight, power
    and ``train.magp_every``) when ``magp``.  Returns the probe (:func:`discriminator_attribute_probe` on the test
    split) every ``probe_every`` steps, each with its step and wall seconds.  How fast the head *can* learn each
    attribute tells a slow signal from a blind architecture or text encoder."""
    import time

    import torch
    import torch.nn.functional as F

    from ..data.dataset import CaptionDataset, make_loader
    from ..data.prepare import ensure_dataset
    from ..losses.adversarial import ma_gp, magp_weight_at
    from ..train.damsm import encoder_path, load_encoders
    from ..train.families.ssagan import heads
    from ..train.gan import get_family
    from ..utils.logging import progress as bar

    _check_run(cfg, steps, probe_every, "the matching head is SSA-GAN's")
    torch.manual_seed(cfg.run.seed)
    d, t = cfg.data, cfg.train
    root = ensure_dataset(cfg, progress=False)
    train = CaptionDataset(root, "train", (d.image_size,), 1, d.max_words, d.long_caption_mode, cfg.run.seed,
                           attribute_negatives=True)
    test = CaptionDataset(root, "test", (d.image_size,), 1, d.max_words, "truncate", cfg.run.seed)
    text_enc, _, _ = load_encoders(encoder_path(cfg), device, vocab_hash=train.vocab.hash)
    D = get_family("ssagan").build(cfg)[0]["D"].to(device)
    opt = torch.optim.Adam(D.parameters(), t.lr_d, betas=(t.beta1, t.beta2))
    loader = make_loader(train, t.batch_size, True, cfg.run.seed, drop_last=True)
    batches, t0, out = _endless(loader, train), time.time(), []
    for step in bar(range(1, steps + 1), progress, desc="matching head"):
        b = next(batches)
        x = b["images"][-1].to(device)
        with torch.no_grad():
            s = text_enc(b["caption"].to(device), b["cap_len"].to(device))[1]
            neg = text_enc(b["caption_neg"].to(device), b["cap_len_neg"].to(device))[1]
        D.train()
        (real,), (mis,) = heads(D, x, [s], True, negatives=neg)  # SSA-GAN's D-step logits, without fakes
        loss = F.relu(1.0 - real).mean() + 0.5 * F.relu(1.0 + mis).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        gp_weight = magp_weight_at(step - 1, t.magp_weight, t.magp_every) if magp else 0.0  # steps count from 1
        if gp_weight > 0:
            gp = ma_gp(lambda a, c: heads(D, a, [c])[0][0], x, s, gp_weight, t.magp_power)
            opt.zero_grad(set_to_none=True)
            gp.backward()
            opt.step()
        if step % probe_every == 0 or step == steps:
            p = discriminator_attribute_probe(D, text_enc, test, device, n_probe_images, cfg.run.seed)
            out.append({"step": step, "seconds": time.time() - t0, "loss": float(loss.detach()), **p})
    return out


def train_backbone_readout(cfg, device, steps: int, probe_every: int, n_test: int = 600,
                           progress: bool = False) -> list[dict[str, Any]]:
    """What a fresh SSA-GAN discriminator's image features *can* carry: the discriminator of ``cfg`` (its blocks
    only, without the conditional head) trained with one linear read-out per attribute on its 4 x 4 features
    (after a LeakyReLU of slope 0.2), cross-entropy summed over the attributes, ``cfg``'s batch size, D learning rate
    and betas.  Returns, every ``probe_every`` steps, the read-out accuracy per attribute on the first ``n_test``
    test images (chance ``1 / n_values``), the blocks' residual gates and the wall seconds.

    The blocks start as their shortcut (``model.d_gate_init`` 0, the reference): a 1x1 convolution and an average
    pool, so at the start the features are an affine function of the image.  Whether the gates open decides whether
    the discriminator can see anything a linear map of a 4 x 4 down-sampling cannot (shape)."""
    import time

    import torch
    import torch.nn.functional as F

    from ..data.dataset import CaptionDataset, make_loader
    from ..data.prepare import ensure_dataset
    from ..train.gan import get_family
    from ..utils.logging import progress as bar

    _check_run(cfg, steps, probe_every, "the read-out is of SSA-GAN's discriminator")
    torch.manual_seed(cfg.run.seed)
    d, t = cfg.data, cfg.train
    root = ensure_dataset(cfg, progress=False)
    train = CaptionDataset(root, "train", (d.image_size,), 1, d.max_words, d.long_caption_mode, cfg.run.seed)
    test = CaptionDataset(root, "test", (d.image_size,), 1, d.max_words, "truncate", cfg.run.seed)
    schema = train.attribute_schema
    D = get_family("ssagan").build(cfg)[0]["D"].to(device)
    width = D.feat_channels * 16
    readout = torch.nn.ModuleDict({a: torch.nn.Linear(width, len(v)) for a, v in schema.items()}).to(device)
    opt = torch.optim.Adam([*D.parameters(), *readout.parameters()], t.lr_d, betas=(t.beta1, t.beta2))
    loader = make_loader(train, t.batch_size, True, cfg.run.seed, drop_last=True)
    n = min(int(n_test), len(test))
    test_x = torch.stack([test.load_and_transform(i, 0)[-1] for i in range(n)]).to(device)
    test_y = {a: torch.tensor([test.records[i]["attributes"][a] for i in range(n)], device=device) for a in schema}

    def features(x):
        return F.leaky_relu(D(x), 0.2).flatten(1)

    batches, t0, out = _endless(loader, train), time.time(), []
    for step in bar(range(1, steps + 1), progress, desc="discriminator read-out"):
        b = next(batches)
        f = features(b["images"][-1].to(device))
        loss = sum(F.cross_entropy(readout[a](f), b["attributes"][a].to(device)) for a in schema)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % probe_every == 0 or step == steps:
            D.eval()
            with torch.no_grad():
                f = torch.cat([features(test_x[s:s + 200]) for s in range(0, n, 200)])
                acc = {a: float((readout[a](f).argmax(1) == test_y[a]).float().mean()) for a in schema}
            D.train()
            out.append({"step": step, "seconds": time.time() - t0, "loss": float(loss.detach()), "n_images": n,
                        "accuracy": acc, "chance": {a: 1.0 / len(v) for a, v in schema.items()},
                        "gates": [blk.gamma.item() for blk in D.blocks]})
    return out
