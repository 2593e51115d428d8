"""AttnGAN with style blocks (the paper's second model): the styled generator and discriminators, trained with the
AttnGAN family's step (:mod:`.attngan`), so the two AttnGAN arms differ only in their networks."""

from __future__ import annotations

from torch import nn

from ...config import Config
from ..step import Family
from . import attngan


def generate(G, z, sent, words=None, word_mask=None, truncation_psi: float = 1.0):
    """Final-resolution images of the styled generator (eval mode): CA noise from the last ``G.ca_dim`` columns of
    ``z`` as in :func:`.attngan.generate`, the injected per-pixel noise random as in the reference but drawn per
    sample from a seed derived from its ``z`` row (so a sample does not depend on its batch), and truncation
    ``truncation_psi`` of w towards its tracked average (1 = none)."""
    from ...models.layers import per_sample_noise, seeds_from_rows

    with per_sample_noise(seeds_from_rows(z)):
        return attngan.generate(G, z, sent, words, word_mask, truncation_psi=truncation_psi)


def build(cfg: Config) -> tuple[dict[str, nn.Module], dict[str, dict]]:
    from ...models.style_attngan import StyleAttnGANGenerator, style_discriminators

    m = cfg.model
    gk = {**attngan.generator_kwargs(cfg), "w_dim": m.w_dim, "mapping_layers": m.mapping_layers,
          "mapping_lr_mult": m.mapping_lr_mult, "style_mixing": m.style_mixing}
    dk = {"image_size": cfg.data.image_size, "ndf": m.ndf, "cond_dim": cfg.damsm.embedding_dim}
    return {"G": StyleAttnGANGenerator(**gk), "D": style_discriminators(**dk)}, {"G": gk, "D": dk}


FAMILY = Family("style_attngan", build, attngan.step, generate, attngan.image_sizes, attngan.noise_dim,
                heads=attngan.heads, per_scale=True, truncation=True)
