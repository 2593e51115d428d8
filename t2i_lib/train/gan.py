"""GAN training: one step function per model family, one loop shared by all (REFERENCE.md §3-§5).

The loss variant is data: ``cfg.train.losses = {damsm, f2f, f2r}`` weights multiply named terms; the step never
branches on a variant's name (a zero weight switches a term off and skips its computation).

Caption sets and pairing (fake-to-fake):
- without f2f: one caption per image, B images, B fakes;
- ``f2f_pairing="duplicate"`` (reference): B images x two *different* captions -> 2B fakes per step;
- ``f2f_pairing="split"``: B/2 images x two captions -> B fakes per step (the baseline's cost).
Both caption sets come in dataset order (the text encoder packs unsorted batches), so fake 1 of item i pairs with
fake 2 of item i and with real image i without un-permuting.  Noise: ``f2f_shared_noise="per_image"`` gives both
captions of an image the same z; ``"per_position"`` reproduces the reference, where noise row k goes with the
k-th caption of each *length-sorted* set (so the two fakes of one image usually get different z).

Loss terms per step (summed over caption sets k, as the reference sums its adversarial and DAMSM terms):
    D:  hinge(real, fake_k, mismatched) [+ MA-GP on (real, s_k)]             (SSA-GAN)
    G:  adv(fake_k) + w_damsm * DAMSM(fake_k, caption_k)
        + w_f2f * NT-Xent(code(fake_1), code(fake_2), tau_f2f)
        + w_f2r * NT-Xent(code(fake_k), code(real), tau_f2r)     (fake-to-real: each set's fakes vs their reals)
The DAMSM image encoder runs once per step over every image that needs features (fakes of all sets, plus the
real images when f2r is on).  Frozen encoders are in eval mode with ``requires_grad=False``; gradients flow through
them into G.

The loop: epochs or ``max_steps``; noise drawn from a generator seeded by (seed, step), sampling order by
(seed, epoch), so a resumed run continues exactly; EMA of G optional; fixed-noise sample grids every
``sample_every`` steps; ``stats.jsonl`` every ``log_every`` steps; atomic checkpoints every ``ckpt_every`` steps
and at the end; non-finite losses stop training naming the term and step (or are skipped and counted with
``train.skip_nonfinite``).

Under torchrun (``torchrun --nproc_per_node=N -m t2i_lib train-gan EXPERIMENT``) the configured batch is the
global batch: each rank loads its slice of every global batch, draws the noise rows of its slice, normalises
with global-batch statistics (SyncBatchNorm / CrossRankBatchNorm), gathers features for the batch-coupled terms
(mismatched pairs, DAMSM matching, NT-Xent negatives), and DDP averages the gradients of G and of D's heads.
Rank 0 alone writes logs, sample grids, checkpoints and the summary.  See :mod:`t2i_lib.train.distributed`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .. import __version__, paths
from ..config import Config
from ..utils.io import write_json
from .distributed import SINGLE, DistInfo, Heads, check_divisible, current, gather_cat, gather_nograd, rank_slices

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN/inf; the message names the term and the step."""


# ------------------------------------------------------------------------------------------------------------
# Context shared by the step functions
# ------------------------------------------------------------------------------------------------------------
@dataclass
class GanContext:
    cfg: Config
    device: torch.device
    text_enc: nn.Module
    image_enc: nn.Module
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    G_ema: nn.Module | None = None
    extra: dict = field(default_factory=dict)
    info: DistInfo = SINGLE
    d_heads: Any = None  # D called through its loss heads (distributed.Heads, DDP-wrapped under torchrun)

    def __post_init__(self):
        if self.d_heads is None:
            self.d_heads = d_heads_for(self.cfg, self.D)

    def amp(self):
        """Autocast of a forward region when ``train.precision`` is bf16 (a no-op in fp32); backward passes and
        optimiser steps run outside it, weights and Adam state stay fp32."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.train.precision == "bf16")


def caption_sets(batch: dict, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    sets = [(batch["caption"].to(device), batch["cap_len"].to(device))]
    if "caption2" in batch:
        sets.append((batch["caption2"].to(device), batch["cap_len2"].to(device)))
    return sets


def noise_for_sets(cfg: Config, n: int, z_dim: int, step: int, sets, device,
                   info: DistInfo = SINGLE) -> list[torch.Tensor]:
    """One z per image (seeded by run seed and step), shared by its captions, or the reference's per-position.
    Under torchrun the noise of the global batch is drawn and each rank takes the rows of its slice."""
    g = torch.Generator().manual_seed(int(cfg.run.seed) * 1_000_003 + int(step))
    z = torch.randn(n * info.world_size, z_dim, generator=g)[info.rank * n:(info.rank + 1) * n].to(device)
    if len(sets) == 1 or cfg.train.f2f_shared_noise == "per_image":
        return [z] * len(sets)
    from ..data.text import sort_by_length

    out = []
    for _, lens in sets:
        _, inverse = sort_by_length(lens.cpu())
        out.append(z[inverse.to(device)])  # item i sits at sorted position inverse[i] and gets that noise row
    return out


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def accumulate(sums: dict[str, torch.Tensor], terms: dict[str, torch.Tensor]) -> None:
    """Add detached loss terms into ``sums`` (summed over caption sets / scales)."""
    for k, v in terms.items():
        sums[k] = sums.get(k, 0.0) + v.detach()


def encoder_terms(ctx: GanContext, fakes: list[torch.Tensor], real: torch.Tensor, sets_emb: list,
                  class_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """DAMSM, fake-to-fake and fake-to-real terms of the G loss, from one image-encoder pass.  Under torchrun the
    features of the global batch are gathered (with gradients to this rank's slice), so the batch-coupled losses
    (DAMSM matching, NT-Xent negatives) are those of the global batch."""
    from ..losses.contrastive import fake_to_fake, fake_to_real
    from ..losses.damsm import damsm_loss

    t, dm = ctx.cfg.train, ctx.cfg.damsm
    w = t.losses
    out: dict[str, torch.Tensor] = {}
    need_real = w.f2r > 0
    if w.damsm <= 0 and w.f2f <= 0 and w.f2r <= 0:
        return out
    batch = torch.cat(fakes + ([real] if need_real else []), dim=0)
    region, code = ctx.image_enc(batch)
    n = fakes[0].shape[0]
    info = ctx.info
    codes = [gather_cat(code[k * n:(k + 1) * n], info) for k in range(len(fakes))]
    if w.damsm > 0:
        dl = 0.0
        cls = gather_nograd(class_ids, info)
        for k, (words, sent, lens) in enumerate(sets_emb):
            g = [gather_nograd(x, info) for x in (words, sent, lens)]
            terms = damsm_loss(gather_cat(region[k * n:(k + 1) * n], info), codes[k], *g, cls,
                               t.damsm_gamma1, dm.gamma2, dm.gamma3, dm.paper_gamma2_factor)
            dl = dl + terms["total"]
        out["g_damsm"] = dl
    if w.f2f > 0 and len(codes) == 2:
        out["g_f2f"] = fake_to_fake(codes[0], codes[1], t.f2f_tau)
    if need_real:
        real_code = gather_nograd(code[len(fakes) * n:].detach(), info)
        out["g_f2r"] = sum(fake_to_real(c, real_code, t.f2r_tau) for c in codes)
    return out


# ------------------------------------------------------------------------------------------------------------
# SSA-GAN family
# ------------------------------------------------------------------------------------------------------------
def ssagan_build(cfg: Config) -> tuple[dict[str, nn.Module], dict[str, dict]]:
    from ..models.ssagan import Discriminator, Generator

    m = cfg.model
    gk = {"image_size": cfg.data.image_size, "ngf": m.ngf, "z_dim": m.z_dim, "cond_dim": cfg.damsm.embedding_dim}
    dk = {"image_size": cfg.data.image_size, "ndf": m.ndf, "cond_dim": cfg.damsm.embedding_dim}
    return {"G": Generator(**gk), "D": Discriminator(**dk)}, {"G": gk, "D": dk}


def ssagan_generate(G, z, sent, words=None, word_mask=None):
    return G(z, sent)


def ssagan_heads(D, x, sents, mismatch: bool = False):
    """The D forward of the D step: conditional logits of ``x`` for each sentence batch in ``sents`` and, with
    ``mismatch``, the logits of the mismatched pairs (image i with the caption of image i + 1 of the global
    batch).  Returns ``(logits per sentence batch, mismatched logits per sentence batch)``."""
    feat = D(x)
    cond = [D.cond_logits(feat, s) for s in sents]
    return cond, _mismatched(D, feat, sents) if mismatch else []


def _mismatched(D, feat, sents) -> list:
    info = current()
    fg = gather_cat(feat, info)
    if fg.shape[0] < 2:
        return [None] * len(sents)
    return [D.cond_logits(fg[:-1], gather_nograd(s, info)[1:]) for s in sents]


def ssagan_step(ctx: GanContext, batch: dict, step: int) -> dict[str, torch.Tensor]:
    """One SSA-GAN iteration: D hinge step, MA-GP step, G step (REFERENCE.md §4.3, §3.6)."""
    from ..losses.adversarial import hinge_d, hinge_g, ma_gp

    cfg, dev, G, D = ctx.cfg, ctx.device, ctx.G, ctx.D
    t = cfg.train
    real = batch["images"][-1].to(dev, non_blocking=True)
    class_ids = batch["class_id"].to(dev)
    sets = caption_sets(batch, dev)
    with torch.no_grad():
        sets_emb = [(*ctx.text_enc(c, l), l) for c, l in sets]  # (words, sent, lens)
    zs = noise_for_sets(cfg, real.shape[0], cfg.model.z_dim, step, sets, dev, ctx.info)
    heads = ctx.d_heads  # the D step's forwards: through DDP under torchrun
    logits = lambda x, s: D.cond_logits(D(x), s)  # noqa: E731  (G step: the plain, frozen D)
    d_terms: dict[str, torch.Tensor] = {}
    d_loss = 0.0
    with ctx.amp():
        fakes = [G(z, s) for z, (_, s, _) in zip(zs, sets_emb)]

        # --- D: hinge with mismatched captions, then MA-GP -------------------------------------------------
        real_logits, mis_logits = heads(real, [s for _, s, _ in sets_emb], True)
        for k, ((_, s, _), fake) in enumerate(zip(sets_emb, fakes)):
            (fake_logits,), _ = heads(fake.detach(), [s])
            terms = hinge_d(real_logits[k], fake_logits, mis_logits[k])
            d_loss = d_loss + terms["d_adv"]
            accumulate(d_terms, terms)
    optimizer_step(ctx.opt_d, d_loss)
    gp = torch.zeros((), device=dev)
    if t.magp_weight > 0:
        with ctx.amp():
            gp = sum(ma_gp(lambda x, s: heads(x, [s])[0][0], real, s, t.magp_weight, t.magp_power)
                     for _, s, _ in sets_emb)
        optimizer_step(ctx.opt_d, gp)

    # --- G: adversarial + DAMSM + contrastive ------------------------------------------------------------
    D.requires_grad_(False)  # no D gradients during the G step
    with ctx.amp():
        g_adv = sum(hinge_g(logits(f, s)) for f, (_, s, _) in zip(fakes, sets_emb))
        enc = encoder_terms(ctx, fakes, real, sets_emb, class_ids)
    g_total = generator_update(ctx, g_adv, enc)
    out = {**d_terms, "d_total": d_loss.detach(), "d_magp": gp.detach(), "g_adv": g_adv.detach(),
           "g_total": g_total.detach()}
    out.update({k: v.detach() for k, v in enc.items()})
    return out


def generator_update(ctx: GanContext, g_base: torch.Tensor, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """G loss = family terms + weighted DAMSM/f2f/f2r terms; one optimiser step; D gradients re-enabled."""
    w = ctx.cfg.train.losses
    g_total = g_base + w.damsm * enc.get("g_damsm", 0.0) + w.f2f * enc.get("g_f2f", 0.0) \
        + w.f2r * enc.get("g_f2r", 0.0)
    optimizer_step(ctx.opt_g, g_total)
    ctx.D.requires_grad_(True)
    return g_total


# ------------------------------------------------------------------------------------------------------------
# AttnGAN family (plain, and with style blocks): multi-scale BCE, CA + KL, word attention
# ------------------------------------------------------------------------------------------------------------
def attngan_build(cfg: Config) -> tuple[dict[str, nn.Module], dict[str, dict]]:
    from ..models.attngan import AttnGANGenerator, MultiScaleDiscriminator
    from ..models.style_attngan import StyleAttnGANGenerator

    m, e = cfg.model, cfg.damsm.embedding_dim
    style = m.family == "style_attngan"
    gk = {"image_size": cfg.data.image_size, "ngf": m.ngf, "z_dim": m.z_dim, "ca_dim": m.ca_dim, "cond_dim": e,
          "word_dim": e, "r_num": m.r_num}
    if style:
        gk.pop("r_num")
        gk.update({"w_dim": m.w_dim, "mapping_layers": m.mapping_layers, "mapping_lr_mult": m.mapping_lr_mult,
                   "style_mixing": m.style_mixing})
        G = StyleAttnGANGenerator(**gk)
    else:
        G = AttnGANGenerator(**gk)
    dk = {"image_size": cfg.data.image_size, "ndf": m.ndf, "cond_dim": e, "style": style}
    return {"G": G, "D": MultiScaleDiscriminator(**dk)}, {"G": gk, "D": dk}


def attngan_generate(G, z, sent, words=None, word_mask=None):
    """Final-resolution images; ``z`` may carry the CA noise in its last ``G.ca_dim`` columns (evaluation noise
    is then a function of the sample index only, so samples do not depend on the batch)."""
    if z.shape[1] == G.z_dim + G.ca_dim:
        return G(z[:, :G.z_dim], sent, words, word_mask, ca_eps=z[:, G.z_dim:])[-1]
    return G(z, sent, words, word_mask)[-1]


def attngan_heads(Di, x, sents, mismatch: bool = False):
    """The D-step forward of one AttnGAN-family discriminator: (conditional logits per sentence batch,
    unconditional logits, mismatched-pair logits per sentence batch when ``mismatch``)."""
    feat = Di(x)
    cond = [Di.cond_logits(feat, s) for s in sents]
    return cond, Di.uncond_logits(feat), _mismatched(Di, feat, sents) if mismatch else []


def attngan_noise_dim(cfg: Config) -> int:
    return cfg.model.z_dim + cfg.model.ca_dim


def attngan_sizes(cfg: Config) -> tuple[int, ...]:
    return tuple(s for s in (64, 128, 256) if s <= cfg.data.image_size)


def attngan_step(ctx: GanContext, batch: dict, step: int) -> dict[str, torch.Tensor]:
    """One AttnGAN-family iteration (REFERENCE.md §5.1, §3.5): D per scale (BCE, cond + uncond + mismatched),
    then G: BCE over scales + lambda * DAMSM(final image) + KL(CA) + contrastive terms on the final image."""
    from ..losses.adversarial import bce_d, bce_g
    from ..models.attngan import kl_loss

    cfg, dev, G, D = ctx.cfg, ctx.device, ctx.G, ctx.D
    reals = [x.to(dev, non_blocking=True) for x in batch["images"]]
    class_ids = batch["class_id"].to(dev)
    sets = caption_sets(batch, dev)
    with torch.no_grad():
        sets_emb = [(*ctx.text_enc(c, l), l) for c, l in sets]
    masks = [c == 0 for c, _ in sets]
    zs = noise_for_sets(cfg, reals[0].shape[0], cfg.model.z_dim, step, sets, dev, ctx.info)
    d_terms: dict[str, torch.Tensor] = {}
    d_loss = 0.0
    with ctx.amp():
        outs = [G(z, s, w, m, return_extras=True) for z, (w, s, _), m in zip(zs, sets_emb, masks)]
        fakes = [o[0] for o in outs]
        for i, heads in enumerate(ctx.d_heads):
            real_cond, real_uncond, mis = heads(reals[i], [s for _, s, _ in sets_emb], True)
            for k, (f, (_, s, _)) in enumerate(zip(fakes, sets_emb)):
                (fake_cond,), fake_uncond, _ = heads(f[i].detach(), [s])
                terms = bce_d(real_cond[k], fake_cond, mis[k], real_uncond, fake_uncond)
                d_loss = d_loss + terms["d_adv"]
                accumulate(d_terms, terms)
    optimizer_step(ctx.opt_d, d_loss)

    D.requires_grad_(False)
    g_adv, kl = 0.0, 0.0
    with ctx.amp():
        for f, (_, s, _), (_, extras) in zip(fakes, sets_emb, outs):
            for i, Di in enumerate(D):
                feat = Di(f[i])
                g_adv = g_adv + bce_g(Di.cond_logits(feat, s), Di.uncond_logits(feat))
            kl = kl + kl_loss(extras["mu"].float(), extras["logvar"].float())
        enc = encoder_terms(ctx, [f[-1] for f in fakes], reals[-1], sets_emb, class_ids)
    g_total = generator_update(ctx, g_adv + kl, enc)
    out = {**d_terms, "d_total": d_loss.detach(), "g_adv": g_adv.detach(), "g_kl": kl.detach(),
           "g_total": g_total.detach()}
    out.update({k: v.detach() for k, v in enc.items()})
    return out


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[Config], tuple[dict[str, nn.Module], dict[str, dict]]]
    step: Callable[[GanContext, dict, int], dict[str, torch.Tensor]]
    generate: Callable  # (G, z, sent, words, word_mask) -> final-resolution images
    image_sizes: Callable[[Config], tuple[int, ...]] = lambda cfg: (cfg.data.image_size,)
    noise_dim: Callable[[Config], int] = lambda cfg: cfg.model.z_dim  # evaluation noise per sample
    betas: Callable[[Config], tuple[float, float]] = lambda cfg: (cfg.train.beta1, cfg.train.beta2)


FAMILIES: dict[str, Family] = {
    "ssagan": Family("ssagan", ssagan_build, ssagan_step, ssagan_generate),
    "attngan": Family("attngan", attngan_build, attngan_step, attngan_generate, attngan_sizes, attngan_noise_dim),
    "style_attngan": Family("style_attngan", attngan_build, attngan_step, attngan_generate, attngan_sizes,
                            attngan_noise_dim),
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise NotImplementedError(f"model family {name!r} is not implemented yet (available: {sorted(FAMILIES)})")
    return FAMILIES[name]


def d_heads_for(cfg: Config, D, info: DistInfo = SINGLE, device=None):
    """D as the D step calls it: :class:`~t2i_lib.train.distributed.Heads` of the family (one per scale for the
    AttnGAN family), DDP-wrapped when distributed."""
    from .distributed import wrap

    if cfg.model.family == "ssagan":
        return wrap(Heads(D, ssagan_heads), info, device)
    return [wrap(Heads(Di, attngan_heads), info, device) for Di in D]


def speed_wrappers(cfg: Config, G: nn.Module, D: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The G and D the step calls: ``torch.compile``-d when ``train.compile`` (weights stay shared with the plain
    modules, which checkpoints save).  D is compiled only where no MA-GP double backward runs through it
    (torch.compile does not support double backward); the AttnGAN family's discriminators one by one."""
    if not cfg.train.compile:
        return G, D
    G = torch.compile(G)
    if cfg.model.family == "ssagan" and cfg.train.magp_weight > 0:
        log.info("train.compile: D left eager (MA-GP's double backward is not supported by torch.compile)")
    elif isinstance(D, nn.ModuleList):
        D = nn.ModuleList([torch.compile(Di) for Di in D])
    else:
        D = torch.compile(D)
    return G, D


# ------------------------------------------------------------------------------------------------------------
# Sampling order
# ------------------------------------------------------------------------------------------------------------
class EpochSampler(torch.utils.data.Sampler):
    """A permutation of range(n) seeded by (seed, epoch), starting at ``start`` (for an exact mid-epoch resume).

    Distributed (``info`` with W ranks, ``batch_size`` the global batch): the same permutation on every rank, cut
    into global batches from ``start``; this rank yields slice ``rank`` of W of each (the last partial batch
    dropped).  With one process the order is the plain permutation."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0, batch_size: int | None = None,
                 info: DistInfo = SINGLE):
        check_divisible(batch_size, info)
        self.n, self.seed, self.epoch, self.start, self.info = n, seed, epoch, start, info
        self.batch_size = batch_size

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch, 17]).permutation(self.n)[self.start:].tolist()
        return iter(order if not self.info.enabled else rank_slices(order, self.batch_size, self.info))

    def __len__(self):
        if not self.info.enabled:
            return self.n - self.start
        return (self.n - self.start) // self.batch_size * (self.batch_size // self.info.world_size)


# ------------------------------------------------------------------------------------------------------------
# The shared loop
# ------------------------------------------------------------------------------------------------------------
def run_dir_for(cfg: Config) -> Path:
    return paths.profile_dir(cfg.profile, cfg.run.results_dir) / "runs" / cfg.run_id


def images_per_loader_batch(cfg: Config) -> int:
    t = cfg.train
    if t.losses.f2f > 0 and t.f2f_pairing == "split":
        return t.batch_size // 2
    return t.batch_size


def sample_grid(G, generate, text_enc, fixed: dict, device, path: Path, nrow: int = 8) -> Path:
    """Images from the fixed captions and fixed noise, saved as one PNG grid (G in eval mode)."""
    import torchvision

    from ..utils.io import atomic_write_bytes

    was = G.training
    G.eval()
    with torch.no_grad():
        words, sent = text_enc(fixed["caption"].to(device), fixed["cap_len"].to(device))
        imgs = generate(G, fixed["z"].to(device), sent, words, None)
    G.train(was)
    grid = torchvision.utils.make_grid(imgs.float().cpu().clamp(-1, 1), nrow=nrow, normalize=True,
                                       value_range=(-1, 1), padding=2)
    from PIL import Image
    import io

    arr = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def fixed_samples(test_ds, n: int, z_dim: int, seed: int) -> dict:
    """The first ``n`` test items with caption 0 (truncated) and noise seeded by ``seed``: the sample grid."""
    from ..data.text import fixed_length

    n = min(n, len(test_ds))
    caps, lens, texts = [], [], []
    for i in range(n):
        rec = test_ds.records[i]
        ids, k = fixed_length(rec["tokens"][0], test_ds.max_words, "truncate")
        caps.append(torch.from_numpy(ids))
        lens.append(k)
        texts.append(rec["captions"][0])
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))
    return {"caption": torch.stack(caps), "cap_len": torch.tensor(lens), "z": z, "texts": texts}


def train_gan(cfg: Config, device, dataset_root: str | Path, force: bool = False, resume: bool = True,
              progress: bool | str = "auto") -> dict[str, Any]:
    """Train the GAN of ``cfg`` on ``dataset_root``; returns (and writes) ``summary.json``.

    Needs the profile's DAMSM (``t2i_lib.train.damsm.encoder_path(cfg)``).  A finished run with the same config
    is reused unless ``force``; an interrupted one resumes from its latest checkpoint when ``resume``.  A second
    process asking for the same run waits for the first (:func:`~t2i_lib.utils.io.dir_lock`), then reuses it.
    Under torchrun (an initialised process group, :func:`t2i_lib.train.distributed.init`) every rank calls this;
    see the module docstring for the semantics.
    """
    import contextlib

    from ..utils.io import dir_lock

    info = current()
    with dir_lock(run_dir_for(cfg)) if info.is_main else contextlib.nullcontext():
        return _train_gan(cfg, device, dataset_root, force, resume, progress, info)


def train_gan_processes(cfg: Config, nproc: int, device: str = "auto", force: bool = False,
                        resume: bool = True) -> dict[str, Any]:
    """Train ``cfg`` on ``nproc`` processes of this machine through PyTorch's elastic launcher (what ``torchrun``
    runs; the route from a notebook): ``python -m t2i_lib train-gan --config`` in each process, global-batch
    semantics as in the module docstring.  The dataset and DAMSM must exist (``ensure_dataset``,
    ``ensure_encoders``).  Returns the summary rank 0 wrote."""
    import tempfile

    from ..utils.io import read_json
    from .distributed import launch

    with tempfile.TemporaryDirectory(prefix="t2i-launch-") as tmp:
        path = write_json(Path(tmp) / "config.json", {"config": cfg.to_dict()})
        args = ["train-gan", cfg.experiment, "--config", str(path), "--device", str(device)]
        args += (["--force"] if force else []) + ([] if resume else ["--no-resume"])
        launch(args, nproc)
    return read_json(run_dir_for(cfg) / "summary.json")


def _train_gan(cfg: Config, device, dataset_root: str | Path, force: bool, resume: bool,
               progress: bool | str, info: DistInfo = SINGLE) -> dict[str, Any]:
    from ..data.dataset import CaptionDataset
    from ..utils.logging import progress as bar
    from . import checkpoint as ck
    from .damsm import encoder_path, load_encoders
    from .run import progress_flag, start_run
    from .distributed import barrier, broadcast, mean_over_ranks, sync_batchnorm, wrap
    from .ema import make_ema, update_ema
    from ..config import ConfigError
    from ..utils.seed import seed_everything

    fam = get_family(cfg.model.family)
    t, d = cfg.train, cfg.data
    run_dir = run_dir_for(cfg)
    summary_path = run_dir / "summary.json"
    if info.enabled and t.compile:
        raise ConfigError("train.compile is not supported under torchrun yet (compiled DDP modules are untested "
                          "here); train without it or in one process")
    reused = broadcast(start_run(cfg, run_dir, force, "GAN") if info.is_main else None, info)
    if reused is not None:
        return reused
    barrier(info)  # rank 0 has (re)created the run directory
    if not info.is_main:
        seed_everything(cfg.run.seed + info.rank)  # own draws of stochastic layers (CA, noise injection) per rank
    main = info.is_main
    prog = progress_flag(cfg, progress) if main else False

    n_caps = 2 if t.losses.f2f > 0 else 1
    sizes = fam.image_sizes(cfg)
    train_ds = CaptionDataset(dataset_root, "train", sizes, n_caps, d.max_words, d.long_caption_mode, cfg.run.seed,
                              d.random_crop, d.random_flip, d.on_bad_image)
    test_ds = CaptionDataset(dataset_root, "test", sizes, 1, d.max_words, "truncate", cfg.run.seed)
    enc_path = encoder_path(cfg)
    text_enc, image_enc, enc_meta = load_encoders(enc_path, device, vocab_hash=train_ds.vocab.hash)

    modules, model_kwargs = fam.build(cfg)
    G, D = (sync_batchnorm(modules[k], info, device).to(device) for k in ("G", "D"))
    if t.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    betas = fam.betas(cfg)
    opt_g = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=betas)
    G_ema = make_ema(G) if t.ema else None
    G_fast, D_fast = speed_wrappers(cfg, G, D)
    ctx = GanContext(cfg, device, text_enc, image_enc, wrap(G_fast, info, device), D_fast, opt_g, opt_d, G_ema,
                     info=info, d_heads=d_heads_for(cfg, D_fast, info, device))

    bs = images_per_loader_batch(cfg)  # global batch
    if len(train_ds) < bs:
        raise ValueError(f"train.batch_size needs {bs} images per batch but the train split has {len(train_ds)}")
    if bs % info.world_size:
        raise ConfigError(f"{bs} images per global batch cannot be split over {info.world_size} processes; "
                          f"choose train.batch_size so that it is a multiple of {info.world_size}")
    steps_per_epoch = len(train_ds) // bs
    total_steps = t.max_steps if t.max_steps > 0 else t.epochs * steps_per_epoch
    ckpt_dir = run_dir / "checkpoints"
    step, skipped = 0, 0
    latest = ck.load_latest(ckpt_dir, expect={"kind": "gan", "config_hash": cfg.hash}) if resume else None
    if latest is not None:
        G.load_state_dict(latest["state"]["G"])
        D.load_state_dict(latest["state"]["D"])
        opt_g.load_state_dict(latest["optim"]["G"])
        opt_d.load_state_dict(latest["optim"]["D"])
        if G_ema is not None:
            G_ema.load_state_dict(latest["state"]["G_ema"])
        ck.set_rng_state(latest["rng"])
        step, skipped = latest["step"], latest.get("skipped_steps", 0)
        log.info("resuming %s from step %d", cfg.run_id, step)
    stats_path = run_dir / "stats.jsonl"
    if main and step == 0 and stats_path.exists():
        stats_path.unlink()
    elif main and stats_path.exists():  # drop records written after the checkpoint we resume from
        keep = [l for l in stats_path.read_text().splitlines() if l and json.loads(l)["step"] <= step]
        stats_path.write_text("".join(k + "\n" for k in keep))
    fixed = fixed_samples(test_ds, 16, fam.noise_dim(cfg), cfg.eval.eval_seed)
    if main:
        write_json(run_dir / "samples" / "captions.json", fixed["texts"])

    def payload():
        state = {"G": G.state_dict(), "D": D.state_dict()}
        if G_ema is not None:
            state["G_ema"] = G_ema.state_dict()
        return {"kind": "gan", "family": cfg.model.family, "config": cfg.to_dict(), "config_hash": cfg.hash,
                "model_kwargs": model_kwargs, "state": state,
                "optim": {"G": opt_g.state_dict(), "D": opt_d.state_dict()}, "rng": ck.rng_state(),
                "vocab_hash": train_ds.vocab.hash, "damsm": enc_meta, "skipped_steps": skipped}

    sums: dict[str, torch.Tensor] = {}
    n_in_tick, t_tick, t0 = 0, time.time(), time.time()
    pbar = bar(range(step, total_steps), enabled=prog, desc=cfg.run_id, initial=step, total=total_steps)
    it = iter(pbar) if not isinstance(pbar, range) else iter(pbar)
    loader_iter, cur_epoch = None, -1
    G.train()
    D.train()
    while step < total_steps:
        epoch, pos = divmod(step, steps_per_epoch)
        if epoch != cur_epoch:
            train_ds.set_epoch(epoch)
            sampler = EpochSampler(len(train_ds), cfg.run.seed, epoch, start=pos * bs, batch_size=bs, info=info)
            loader = torch.utils.data.DataLoader(train_ds, batch_size=bs // info.world_size, sampler=sampler,
                                                 drop_last=True,
                                                 num_workers=d.num_workers, pin_memory=device.type == "cuda")
            loader_iter, cur_epoch = iter(loader), epoch
        batch = next(loader_iter)
        if t.channels_last:
            batch["images"] = [x.contiguous(memory_format=torch.channels_last) for x in batch["images"]]
        terms = mean_over_ranks(fam.step(ctx, batch, step), info)  # every rank sees the same logged values
        if t.finite_check == "log":  # no host sync here: the sums are checked when they are logged
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            n_in_tick += 1
        elif not bool(torch.isfinite(torch.stack([v.detach().float().sum() for v in terms.values()])).all()):
            bad = [k for k, v in terms.items() if not torch.isfinite(v).all()]  # one host sync per step
            msg = f"non-finite loss {', '.join(bad)} at step {step} of {cfg.run_id}"
            if not t.skip_nonfinite:
                raise NonFiniteLossError(msg + " (last good checkpoint kept; set train.skip_nonfinite to skip)")
            skipped += 1
            log.warning("%s: skipped (%d so far)", msg, skipped)
        else:
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            n_in_tick += 1
        if G_ema is not None:
            update_ema(G_ema, G, t.ema_decay)
        step += 1
        next(it, None)
        if step % t.log_every == 0 or step == total_steps:
            rec = {"step": step, "epoch": epoch, "seconds": time.time() - t_tick, "skipped_steps": skipped,
                   **{k: float(v) / max(n_in_tick, 1) for k, v in sums.items()}}
            bad = [k for k in sums if not math.isfinite(rec[k])]
            if bad:  # finite_check "log": the interval's steps are named, not the step
                raise NonFiniteLossError(f"non-finite loss {', '.join(bad)} between steps {step - n_in_tick + 1} "
                                         f"and {step} of {cfg.run_id} (last good checkpoint kept; "
                                         "train.finite_check='step' names the step)")
            if main:
                with open(stats_path, "a") as fh:
                    fh.write(json.dumps(rec, sort_keys=True) + "\n")
            sums, n_in_tick, t_tick = {}, 0, time.time()
            if hasattr(pbar, "set_postfix"):
                pbar.set_postfix(d=f"{rec.get('d_total', 0):.3f}", g=f"{rec.get('g_total', 0):.3f}")
        if main and (step % t.sample_every == 0 or step == total_steps):
            sample_grid(G_ema if G_ema is not None else G, fam.generate, text_enc, fixed, device,
                        run_dir / "samples" / f"fakes_{step:06d}.png")
        if main and (step % t.ckpt_every == 0 or step == total_steps):
            ck.save(ckpt_dir, step, payload(), keep_last=3)
    if hasattr(pbar, "close"):
        pbar.close()
    barrier(info)
    if not main:
        return broadcast(None, info)

    history = [json.loads(l) for l in stats_path.read_text().splitlines() if l] if stats_path.exists() else []
    final_grid = run_dir / "samples" / f"fakes_{total_steps:06d}.png"
    summary = {"run_id": cfg.run_id, "config_hash": cfg.hash, "lib_version": __version__, "seed": cfg.run.seed,
               "family": cfg.model.family, "losses": t.losses.as_dict(), "f2f_pairing": t.f2f_pairing,
               "f2f_shared_noise": t.f2f_shared_noise, "steps": total_steps, "steps_per_epoch": steps_per_epoch,
               "images_per_step": bs * n_caps, "skipped_steps": skipped, "damsm": enc_meta,
               "dataset": str(dataset_root), "device": str(device), "wall_seconds": time.time() - t0,
               "final": history[-1] if history else {}, "checkpoint": str(ckpt_dir / f"ckpt_{total_steps:06d}.pt"),
               "sample_grid": str(final_grid), "stats": str(stats_path), "summary_file": str(summary_path),
               "world_size": info.world_size}
    write_json(summary_path, summary)
    return broadcast(summary, info)


def load_generator(path: str | Path, device, use_ema: bool = True) -> tuple[nn.Module, dict]:
    """The generator (EMA weights when present and ``use_ema``) of a GAN checkpoint, in eval mode."""
    from . import checkpoint as ck

    c = ck.load(path, expect={"kind": "gan"})
    fam = get_family(c["family"])
    from ..config import from_dict

    cfg = from_dict(c["config"])
    modules, _ = fam.build(cfg)
    G = modules["G"]
    key = "G_ema" if use_ema and "G_ema" in c["state"] else "G"
    G.load_state_dict(c["state"][key])
    G.to(device).eval()
    return G, {"config": cfg, "weights": key, "step": c["step"], "family": c["family"]}
