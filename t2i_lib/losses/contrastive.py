r"""Contrastive losses of 2312.10854 (fake-to-fake, fake-to-real) on top of NT-Xent, as pure functions of tensors.

NT-Xent (docs/method.md#nt-xent).  Given ``a, b`` of shape ``N x d`` where ``(a_i, b_i)`` is the positive pair:

- ``z = l2_normalise([a_1 .. a_N ; b_1 .. b_N])`` (``2N x d``), ``s_xy = z_x . z_y / tau``;
- anchor ``x`` has positive ``p(x) = x + N`` (``x < N``) or ``x - N``; its negatives are the other ``2N - 2`` rows;
- ``l_x = -log( exp(s_{x,p(x)}) / sum_{y != x} exp(s_xy) )``, ``L = (1 / 2N) sum_x l_x``.

This is a ``2N``-way cross-entropy over every ``y != x`` (self-similarity excluded with ``-inf``) with target
``p(x)``; it equals the reference's masked formulation but needs no mask built for one batch size, so it works
for any ``N >= 2`` (incomplete last batches included).  It is symmetric in ``a`` and ``b`` and invariant to the
scale of each input row.

Pairing.  Row ``i`` of both inputs must describe the same dataset item.  Batches sorted by caption length (each
caption set by its own lengths) must be brought back to dataset order first with :func:`unpermute`
(docs/method.md#pairing-and-order).
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["nt_xent", "fake_to_fake", "fake_to_real", "unpermute"]


def nt_xent(a: Tensor, b: Tensor, tau: float) -> Tensor:
    """NT-Xent between ``a`` and ``b`` (``N x d`` each, ``N >= 2``); rows ``i`` are positives, all other rows negatives.

    Returns the mean over the ``2N`` anchors (both directions), a scalar.
    """
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"nt_xent expects two N x d matrices, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"nt_xent inputs must have the same shape (row i of each is a positive pair), got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    n = a.shape[0]
    if n < 2:
        raise ValueError(f"nt_xent needs at least 2 pairs (negatives come from the batch), got N={n}")
    if not float(tau) > 0:
        raise ValueError(f"temperature tau must be > 0, got {tau}")
    z = F.normalize(torch.cat([a, b], dim=0), dim=1, eps=1e-8)
    sim = (z @ z.t()) / tau
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=sim.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    idx = torch.arange(n, device=sim.device)
    target = torch.cat([idx + n, idx])
    return F.cross_entropy(sim, target)


def fake_to_fake(code_1: Tensor, code_2: Tensor, tau: float) -> Tensor:
    """Fake-to-fake loss (docs/method.md#fake-to-fake): NT-Xent between fakes generated from two captions of the same image.

    Args:
        code_1: ``N x d`` DAMSM global image features (``cnn_code``) of the fakes generated from caption set 1.
        code_2: the same for caption set 2.  Row ``i`` of both must come from the two captions of dataset item
            ``i``: if the caption sets were sorted by length (each by its own lengths), callers must un-permute
            both to dataset order with :func:`unpermute` before calling.  The other ``2N - 2`` fakes of the batch
            are the negatives.
        tau: temperature (the reference hard-codes 0.5).

    Gradients flow into both arguments (through the frozen image encoder into G).
    """
    return nt_xent(code_1, code_2, tau)


def fake_to_real(code_fake: Tensor, code_real: Tensor, tau: float, detach_real: bool = True) -> Tensor:
    """Fake-to-real loss (docs/method.md#fake-to-real; no public implementation, design UNVERIFIED).

    NT-Xent between each fake's DAMSM global feature and that of its ground-truth real image; the other fakes and
    reals of the batch are the negatives.  Row ``i`` of both must refer to dataset item ``i`` (un-permute first).

    Args:
        code_fake: ``N x d`` features of the fakes (gradients flow into G).
        code_real: ``N x d`` features of the matching real images.
        tau: temperature.
        detach_real: if True (default) ``code_real`` is treated as a constant target: no gradient reaches it.
            The image encoder is frozen either way, so this only changes whether autograd tracks the real branch
            (memory/time); the loss value is the same.  Recorded in the run config.
    """
    return nt_xent(code_fake, code_real.detach() if detach_real else code_real, tau)


def unpermute(x_sorted: Tensor, sort_ind: Union[Tensor, Sequence[int]]) -> Tensor:
    """Bring rows sorted by caption length back to dataset order (docs/method.md#pairing-and-order).

    ``sort_ind[k]`` is the dataset position of sorted row ``k`` (e.g. the indices returned by
    ``torch.sort(lens, descending=True)``), so ``out[sort_ind[k]] = x_sorted[k]``, i.e.
    ``out = x_sorted[argsort(sort_ind)]``.  Works along dim 0 for any trailing shape and is differentiable.
    """
    ind = torch.as_tensor(sort_ind, device=x_sorted.device).reshape(-1).long()
    n = x_sorted.shape[0]
    if ind.numel() != n:
        raise ValueError(f"sort_ind has {ind.numel()} entries for {n} rows")
    if not torch.equal(torch.sort(ind).values, torch.arange(n, device=ind.device)):
        raise ValueError("sort_ind must be a permutation of 0..N-1")
    return x_sorted[torch.argsort(ind)]
