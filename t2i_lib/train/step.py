"""What every family's training step shares: the context, caption sets, noise, the encoder-based G terms (DAMSM,
fake-to-fake, fake-to-real), the generator update and the :class:`Family` record a family module registers.

See :mod:`t2i_lib.train.gan` for the loss terms and the loop, and :mod:`t2i_lib.train.families` for the
families.  Adding a family means one module in ``families/`` (build, generate, heads, step) and one registry line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..config import Config
from .distributed import SINGLE, DistInfo, current, gather_cat, gather_nograd


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
            from .gan import d_heads_for

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
    """The noise of each caption set's fakes, seeded by (run seed, step) only, so every arm of a study draws the
    same noise.  ``train.pair_noise``:

    - ``independent`` (default): each set gets its own draw (set k the k-th of len(sets) successive draws from the
      step's generator), so the two fakes of an image never share z -- the reference's behaviour once its
      length-sorted caption sets are put back in dataset order.  A text-blind generator then cannot satisfy
      fake-to-fake by repeating z.
    - ``per_image``: both fakes of an image share the same z (the first set's rows).  Fake-to-fake is then nearly
      as easy for a generator that ignores the text as for one that follows it.
    - ``per_position``: the reference's literal rows: noise row k goes with the k-th caption of each
      *length-sorted* set.

    The first set's noise is the same under all three.  Under torchrun the noise of the global batch is drawn
    and each rank takes the rows of its slice."""
    g = torch.Generator().manual_seed(int(cfg.run.seed) * 1_000_003 + int(step))
    mode = cfg.train.pair_noise
    n_draw = len(sets) if mode == "independent" else 1
    rows = slice(info.rank * n, (info.rank + 1) * n)
    draws = [torch.randn(n * info.world_size, z_dim, generator=g)[rows].to(device) for _ in range(n_draw)]
    if mode == "independent":
        return draws
    z = draws[0]
    if len(sets) == 1 or mode == "per_image":
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




def generator_update(ctx: GanContext, g_base: torch.Tensor, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """G loss = family terms + weighted DAMSM/f2f/f2r terms; one optimiser step; D gradients re-enabled."""
    w = ctx.cfg.train.losses
    g_total = g_base + w.damsm * enc.get("g_damsm", 0.0) + w.f2f * enc.get("g_f2f", 0.0) \
        + w.f2r * enc.get("g_f2r", 0.0)
    optimizer_step(ctx.opt_g, g_total)
    ctx.D.requires_grad_(True)
    return g_total


def mismatched(D, feat, sents) -> list:
    """Logits of the mismatched pairs (image i with the caption of image i + 1 of the global batch) for each
    sentence batch in ``sents``, from D's features ``feat``."""
    info = current()
    fg = gather_cat(feat, info)
    if fg.shape[0] < 2:
        return [None] * len(sents)
    return [D.cond_logits(fg[:-1], gather_nograd(s, info)[1:]) for s in sents]


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[Config], tuple[dict[str, nn.Module], dict[str, dict]]]
    step: Callable[[GanContext, dict, int], dict[str, torch.Tensor]]
    generate: Callable  # (G, z, sent, words, word_mask) -> final-resolution images
    image_sizes: Callable[[Config], tuple[int, ...]] = lambda cfg: (cfg.data.image_size,)
    noise_dim: Callable[[Config], int] = lambda cfg: cfg.model.z_dim  # evaluation noise per sample
    betas: Callable[[Config], tuple[float, float]] = lambda cfg: (cfg.train.beta1, cfg.train.beta2)
    heads: Callable | None = None  # (D, x, sents, mismatch) -> logits the D step needs (distributed.Heads)
    per_scale: bool = False  # D is a list of per-scale discriminators, one Heads each
    truncation: bool = False  # generate() takes truncation_psi (model.truncation_psi / figure_truncation_psi)

    def sampler(self, cfg: Config, figures: bool = False) -> Callable:
        """``generate`` as evaluation (``model.truncation_psi``) or figures (``model.figure_truncation_psi``) call
        it: (G, z, sent, words, word_mask) -> final-resolution images."""
        psi = cfg.model.figure_truncation_psi if figures else cfg.model.truncation_psi
        if not self.truncation or psi == 1.0:
            return self.generate
        import functools

        return functools.partial(self.generate, truncation_psi=psi)
