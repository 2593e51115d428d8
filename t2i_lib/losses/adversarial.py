"""Adversarial losses and regularisers over logits, as pure functions (docs/method.md#ssa-gan-step).

``hinge_d`` / ``hinge_g``: SSA-GAN / DF-GAN hinge losses with the mismatched-caption term
    L_D = E[relu(1 - D(x, s))] + 1/2 (E[relu(1 + D(G(z, s), s))] + E[relu(1 + D(x, s_mis))])
    L_G = -E[D(G(z, s), s)]
``ma_gp``: matching-aware zero-centred gradient penalty (DF-GAN's MA-GP; SSA-GAN k = 2, p = 6) on real images
    and their matching sentences:  k * mean_i ( ||[grad_x D(x, s), grad_s D(x, s)]_i||_2 ^ p ); ``magp_weight_at``
    its k at a step (every step, or lazily every n-th at n k).
``bce_d`` / ``bce_g``: AttnGAN's BCE losses over probabilities' logits with conditional and unconditional heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def hinge_d(real_logits: Tensor, fake_logits: Tensor, mis_logits: Tensor | None) -> dict[str, Tensor]:
    real = F.relu(1.0 - real_logits).mean()
    fake = F.relu(1.0 + fake_logits).mean()
    if mis_logits is None:
        total = real + fake
        mis = torch.zeros((), device=real.device)
    else:
        mis = F.relu(1.0 + mis_logits).mean()
        total = real + 0.5 * (fake + mis)
    return {"d_real": real, "d_fake": fake, "d_mis": mis, "d_adv": total}


def hinge_g(fake_logits: Tensor) -> Tensor:
    return -fake_logits.mean()


def ma_gp(logit_fn, images: Tensor, sent_emb: Tensor, weight: float = 2.0, power: float = 6.0) -> Tensor:
    """MA-GP: ``weight * mean(||[d logits / d images, d logits / d sent]||_2 ** power)``.

    ``logit_fn(images, sent_emb) -> logits (B,)``; works under DDP (double backward through ``logit_fn``).
    """
    images = images.detach().requires_grad_(True)
    sent_emb = sent_emb.detach().requires_grad_(True)
    logits = logit_fn(images, sent_emb)
    gi, gs = torch.autograd.grad(logits.sum(), (images, sent_emb), create_graph=True)
    norm = torch.sqrt(gi.flatten(1).pow(2).sum(1) + gs.flatten(1).pow(2).sum(1))
    return weight * norm.pow(power).mean()


def magp_weight_at(step: int, weight: float, every: int = 1) -> float:
    """MA-GP's weight at training step ``step`` (0-based): ``weight`` on every step (SSA-GAN, ``every`` 1); lazy
    (``every`` k > 1, ``train.magp_every``) ``k * weight`` on steps 0, k, 2k, ... and 0 on the others."""
    return weight * every if weight > 0 and step % every == 0 else 0.0


def bce_d(real_cond: Tensor, fake_cond: Tensor, mis_cond: Tensor, real_uncond: Tensor | None = None,
          fake_uncond: Tensor | None = None) -> dict[str, Tensor]:
    """AttnGAN D loss on logits: (real_uncond + real_cond)/2 + (fake_uncond + fake_cond + mis_cond)/3.

    Without unconditional heads: real_cond + (fake_cond + mis_cond)/2.
    """
    ones, zeros = torch.ones_like(real_cond), torch.zeros_like(real_cond)
    rc = F.binary_cross_entropy_with_logits(real_cond, ones)
    fc = F.binary_cross_entropy_with_logits(fake_cond, torch.zeros_like(fake_cond))
    mc = F.binary_cross_entropy_with_logits(mis_cond, torch.zeros_like(mis_cond))
    if real_uncond is None or fake_uncond is None:
        return {"d_real": rc, "d_fake": fc, "d_mis": mc, "d_adv": rc + 0.5 * (fc + mc)}
    ru = F.binary_cross_entropy_with_logits(real_uncond, torch.ones_like(real_uncond))
    fu = F.binary_cross_entropy_with_logits(fake_uncond, torch.zeros_like(fake_uncond))
    del zeros
    return {"d_real": (ru + rc) / 2, "d_fake": (fu + fc) / 2, "d_mis": mc, "d_adv": (ru + rc) / 2 + (fu + fc + mc) / 3}


def bce_g(fake_cond: Tensor, fake_uncond: Tensor | None = None) -> Tensor:
    """AttnGAN G loss on logits: BCE(cond, 1) + BCE(uncond, 1)."""
    loss = F.binary_cross_entropy_with_logits(fake_cond, torch.ones_like(fake_cond))
    if fake_uncond is not None:
        loss = loss + F.binary_cross_entropy_with_logits(fake_uncond, torch.ones_like(fake_uncond))
    return loss
