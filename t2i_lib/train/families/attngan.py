"""The AttnGAN family (plain AttnGAN; :mod:`.style_attngan` reuses its step with style blocks): build, sampling,
D heads per scale and the training step.

One iteration (docs/method.md#attngan-family-step): D per scale (BCE: conditional + unconditional + mismatched),
then G: BCE over scales + lambda * DAMSM(final image) + KL(CA) + the contrastive terms on the final image, each
summed over the caption sets.
"""

from __future__ import annotations

import torch
from torch import nn

from ...config import Config
from ..step import Family, GanContext, accumulate, caption_sets, encoder_terms, generator_update, mismatched, \
    noise_for_sets, optimizer_step


def generator_kwargs(cfg: Config) -> dict:
    """Constructor arguments shared by the plain and the styled generator."""
    m, e = cfg.model, cfg.damsm.embedding_dim
    return {"image_size": cfg.data.image_size, "ngf": m.ngf, "z_dim": m.z_dim, "ca_dim": m.ca_dim, "cond_dim": e,
            "word_dim": e}


def build(cfg: Config) -> tuple[dict[str, nn.Module], dict[str, dict]]:
    from ...models.attngan import AttnGANGenerator, MultiScaleDiscriminator

    gk = {**generator_kwargs(cfg), "r_num": cfg.model.r_num}
    dk = {"image_size": cfg.data.image_size, "ndf": cfg.model.ndf, "cond_dim": cfg.damsm.embedding_dim}
    return {"G": AttnGANGenerator(**gk), "D": MultiScaleDiscriminator(**dk)}, {"G": gk, "D": dk}


def generate(G, z, sent, words=None, word_mask=None, **g_kwargs):
    """Final-resolution images; ``z`` may carry the CA noise in its last ``G.ca_dim`` columns (evaluation noise
    is then a function of the sample index only, so samples do not depend on the batch).  ``g_kwargs`` go to G
    (e.g. ``truncation_psi`` for the styled generator)."""
    if z.shape[1] == G.z_dim + G.ca_dim:
        return G(z[:, :G.z_dim], sent, words, word_mask, ca_eps=z[:, G.z_dim:], **g_kwargs)[-1]
    return G(z, sent, words, word_mask, **g_kwargs)[-1]


def heads(Di, x, sents, mismatch: bool = False):
    """The D-step forward of one AttnGAN-family discriminator: (conditional logits per sentence batch,
    unconditional logits, mismatched-pair logits per sentence batch when ``mismatch``)."""
    feat = Di(x)
    cond = [Di.cond_logits(feat, s) for s in sents]
    return cond, Di.uncond_logits(feat), mismatched(Di, feat, sents) if mismatch else []


def noise_dim(cfg: Config) -> int:
    return cfg.model.z_dim + cfg.model.ca_dim


def image_sizes(cfg: Config) -> tuple[int, ...]:
    from ...models.attngan import stage_sizes

    return tuple(stage_sizes(cfg.data.image_size))


def step(ctx: GanContext, batch: dict, step: int) -> dict[str, torch.Tensor]:
    """One AttnGAN-family iteration (docs/method.md#attngan-family-step): D per scale (BCE, cond + uncond + mismatched),
    then G: BCE over scales + lambda * DAMSM(final image) + KL(CA) + contrastive terms on the final image."""
    from ...losses.adversarial import bce_d, bce_g
    from ...models.attngan import kl_loss

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


FAMILY = Family("attngan", build, step, generate, image_sizes, noise_dim, heads=heads, per_scale=True)
