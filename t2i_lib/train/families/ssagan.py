"""The SSA-GAN family: build (generator + discriminator from the config), sampling, D heads and the training step.

One iteration (docs/method.md#ssa-gan-step): D hinge step with mismatched captions (the next image's caption, plus
with ``train.attribute_negatives`` a caption wrong in one attribute per real image), MA-GP step (every step; with
``train.magp_every`` k > 1 every k-th step at k times the weight), then the G step
(hinge + the encoder terms of :func:`t2i_lib.train.step.encoder_terms`), each summed over the caption sets.
"""

from __future__ import annotations

import torch
from torch import nn

from ...config import Config
from ..step import Family, GanContext, accumulate, caption_sets, encoder_terms, generator_update, mismatched, \
    noise_for_sets, optimizer_step


def build(cfg: Config) -> tuple[dict[str, nn.Module], dict[str, dict]]:
    from ...models.ssagan import Discriminator, Generator

    m = cfg.model
    gk = {"image_size": cfg.data.image_size, "ngf": m.ngf, "z_dim": m.z_dim, "cond_dim": cfg.damsm.embedding_dim,
          "hidden_dim": m.cond_hidden, "mask_hidden": m.mask_hidden, "widths": m.widths}
    dk = {"image_size": cfg.data.image_size, "ndf": m.ndf, "cond_dim": cfg.damsm.embedding_dim, "widths": m.widths}
    if m.d_gate_init != 0.0:  # absent at the reference value: checkpoints written before the option load as they are
        dk["gate_init"] = m.d_gate_init
    return {"G": Generator(**gk), "D": Discriminator(**dk)}, {"G": gk, "D": dk}


def generate(G, z, sent, words=None, word_mask=None):
    return G(z, sent)


def heads(D, x, sents, mismatch: bool = False, negatives=None):
    """The D forward of the D step: conditional logits of ``x`` for each sentence batch in ``sents`` and, with
    ``mismatch``, the logits of the mismatched pairs (image i with the caption of image i + 1 of the global
    batch), followed, when ``negatives`` (one sentence per image of ``x``) is given, by those of each image with
    its negative caption (``train.attribute_negatives``).  Returns ``(logits per sentence batch, mismatched
    logits per sentence batch)``."""
    feat = D(x)
    cond = [D.cond_logits(feat, s) for s in sents]
    if not mismatch:
        return cond, []
    mis = mismatched(D, feat, sents)
    if negatives is not None:
        neg = D.cond_logits(feat, negatives)
        mis = [neg if m is None else torch.cat([m, neg]) for m in mis]
    return cond, mis


def step(ctx: GanContext, batch: dict, step: int) -> dict[str, torch.Tensor]:
    """One SSA-GAN iteration: D hinge step, MA-GP step, G step (docs/method.md#ssa-gan-step)."""
    from ...losses.adversarial import hinge_d, hinge_g, ma_gp, magp_weight_at

    cfg, dev, G, D = ctx.cfg, ctx.device, ctx.G, ctx.D
    t = cfg.train
    real = batch["images"][-1].to(dev, non_blocking=True)
    class_ids = batch["class_id"].to(dev)
    sets = caption_sets(batch, dev)
    with torch.no_grad():
        sets_emb = [(*ctx.text_enc(c, l), l) for c, l in sets]  # (words, sent, lens)
        neg = None  # train.attribute_negatives: captions wrong in one attribute, one per real image
        if "caption_neg" in batch:
            neg = ctx.text_enc(batch["caption_neg"].to(dev), batch["cap_len_neg"].to(dev))[1]
    zs = noise_for_sets(cfg, real.shape[0], cfg.model.z_dim, step, sets, dev, ctx.info)
    heads = ctx.d_heads  # the D step's forwards: through DDP under torchrun
    logits = lambda x, s: D.cond_logits(D(x), s)  # noqa: E731  (G step: the plain, frozen D)
    d_terms: dict[str, torch.Tensor] = {}
    d_loss = 0.0
    with ctx.amp():
        fakes = [G(z, s) for z, (_, s, _) in zip(zs, sets_emb)]

        # --- D: hinge with mismatched captions, then MA-GP -------------------------------------------------
        real_logits, mis_logits = heads(real, [s for _, s, _ in sets_emb], True, negatives=neg)
        for k, ((_, s, _), fake) in enumerate(zip(sets_emb, fakes)):
            (fake_logits,), _ = heads(fake.detach(), [s])
            terms = hinge_d(real_logits[k], fake_logits, mis_logits[k])
            d_loss = d_loss + terms["d_adv"]
            accumulate(d_terms, terms)
    optimizer_step(ctx.opt_d, d_loss)
    gp = torch.zeros((), device=dev)
    gp_weight = magp_weight_at(step, t.magp_weight, t.magp_every)
    if gp_weight > 0:
        with ctx.amp():
            gp = sum(ma_gp(lambda x, s: heads(x, [s])[0][0], real, s, gp_weight, t.magp_power)
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


FAMILY = Family("ssagan", build, step, generate, heads=heads)
