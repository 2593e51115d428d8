"""What AttnGAN-family generators pass on of each synthetic attribute through their conditioning augmentation.

AttnGAN and AttnGAN with style blocks do not draw from the sentence embedding itself: the CA network maps it to a
mean ``mu`` and a variance, and the generator sees ``c = mu + sigma * eps``.  An attribute reaches the first stage
only as far as its classes sit apart in ``mu`` compared with that noise.  For each attribute of a synthetic test
split this module reports

- ``sentence_share``: the between-class share of the raw sentence embeddings' variance (what the encoder offers,
  :func:`~t2i_lib.metrics.encoder_probe.variance_share`);
- ``mu_share``: the same share in ``mu`` (what the CA network keeps);
- ``signal_to_noise``: the between-class variance of ``mu`` over the mean CA noise variance, both summed over
  dimensions (:func:`signal_to_noise`).  Near 0 the noise drowns the attribute; at 1 the classes sit as far apart
  as one noise draw spreads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .encoder_probe import between_class_scatter, caption_owners, variance_share


def signal_to_noise(mu: "np.ndarray", noise_var: "np.ndarray", labels: Sequence[int]) -> float:
    """Between-class variance of ``mu`` (N x D; per item, summed over dimensions: sum over classes of
    n_k |mean_k - mean|^2 / N) over the mean total noise variance (``noise_var`` N x D, summed over dimensions,
    averaged over items)."""
    m = np.asarray(mu, dtype=np.float64)
    v = np.asarray(noise_var, dtype=np.float64)
    y = np.asarray(labels)
    if m.ndim != 2 or v.shape != m.shape or len(y) != len(m) or len(m) < 2:
        raise ValueError(f"need N x D mu and noise variances and N labels (N >= 2), got {m.shape}, {v.shape} and "
                         f"{y.shape}")
    if (v < 0).any() or v.sum() == 0.0:
        raise ValueError("noise variances must be non-negative and not all 0")
    return between_class_scatter(m, y) / len(y) / float(v.sum(axis=1).mean())


def conditioning_probe(ca_net, text_encoder, dataset, device, seed: int = 0) -> dict[str, Any]:
    """Per attribute of ``dataset`` (a synthetic CaptionDataset whose records carry ``attributes`` and
    ``mentions``), over the captions that state it: sentence share, ``mu`` share and signal-to-noise of ``ca_net``
    (a :class:`~t2i_lib.models.attngan.CANet`) on ``text_encoder``'s sentence embeddings."""
    import torch

    from .r_precision import sentence_table

    recs = dataset.records
    if not recs or not isinstance(recs[0].get("attributes"), dict) or recs[0].get("mentions") is None:
        raise ValueError("conditioning_probe needs a synthetic dataset whose records carry attributes and mentions")
    table, offsets = sentence_table(text_encoder, dataset, device, seed=seed)
    was_training = ca_net.training
    ca_net.eval()
    with torch.no_grad():
        mu, logvar = ca_net.encode(table.to(device))
    ca_net.train(was_training)
    raw = table.numpy().astype(np.float64)
    mu = mu.float().cpu().numpy().astype(np.float64)
    var = logvar.float().exp().cpu().numpy().astype(np.float64)
    owner, mentions = caption_owners(recs, offsets)
    out: dict[str, Any] = {"n_images": len(recs), "n_captions": len(owner),
                           "mean_noise_variance": float(var.mean()), "mean_mu_variance": float(mu.var(axis=0).mean()),
                           "attributes": {}}
    for name in recs[0]["attributes"]:
        stated = np.array([name in m for m in mentions])
        if not stated.any():
            continue
        labels = np.array([r["attributes"][name] for r in recs])[owner[stated]]
        if len(np.unique(labels)) < 2:
            continue
        out["attributes"][name] = {"sentence_share": variance_share(raw[stated], labels),
                                   "mu_share": variance_share(mu[stated], labels),
                                   "signal_to_noise": signal_to_noise(mu[stated], var[stated], labels),
                                   "n_captions_stating": int(stated.sum())}
    return out


def probe_ca_checkpoint(path: str | Path, device, use_ema: bool = True) -> dict[str, Any]:
    """:func:`conditioning_probe` of an AttnGAN or AttnGAN-with-style-blocks checkpoint (its EMA generator when it
    has one and ``use_ema``) with its run's text encoder on the test split of its dataset, with the run's id, step
    and config hash."""
    from .. import __version__
    from ..data.dataset import CaptionDataset
    from ..data.prepare import ensure_dataset
    from ..train.damsm import encoder_path, load_encoders
    from ..train.gan import load_generator

    G, meta = load_generator(path, device, use_ema=use_ema)
    if not hasattr(G, "ca_net"):
        raise ValueError(f"{path}: a {meta['family']!r} generator has no conditioning augmentation to probe")
    cfg = meta["config"]
    d = cfg.data
    test = CaptionDataset(ensure_dataset(cfg, progress=False), "test", (d.image_size,), 1, d.max_words, "truncate",
                          cfg.run.seed)
    enc = encoder_path(cfg)
    text_enc, _, _ = load_encoders(enc, device, vocab_hash=test.vocab.hash)
    probe = conditioning_probe(G.ca_net, text_enc, test, device, seed=cfg.eval.eval_seed)
    encoder = "/".join(enc.parts[-3 if enc.parent.name == "checkpoints" else -2:])  # its run folder and file
    return {"run_id": cfg.run_id, "config_hash": cfg.hash, "family": meta["family"], "step": meta["step"],
            "weights": meta["weights"], "encoder": encoder, "lib_version": __version__, **probe}
