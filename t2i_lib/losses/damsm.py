r"""DAMSM losses (Deep Attentional Multimodal Similarity Model), as pure functions of tensors.

Formulas and conventions follow docs/method.md#damsm-losses (the AttnGAN lineage); nothing here reads a global
config, and every smoothing factor is an argument.

Notation: a caption has ``T`` real words ``e_1..e_T`` (columns of ``words_emb[i, :, :cap_lens[i]]``), an image
has ``R = H*W`` regions ``v_1..v_R`` (columns of ``region_feats[b]`` flattened).

Word-level (attention) score of image ``b`` and caption ``i``
    1. ``s_tr = e_t . v_r``                                               (raw word/region dot products)
    2. ``sbar_tr = softmax_t(s_tr)``          normalised over the caption's *real* words for each region
                                              (padding beyond ``cap_len`` is excluded and never read)
    3. ``alpha_tr = softmax_r(gamma1 * sbar_tr)``        attention of word ``t`` over regions
    4. ``c_t = sum_r alpha_tr v_r``                      region context of word ``t``
    5. ``R(c_t, e_t) = cos(c_t, e_t)``
    6. ``score(b, i) = log sum_t exp(gamma2 * cos(c_t, e_t))``
       The AttnGAN *paper* writes ``(1 / gamma2) * log sum_t exp(gamma2 * R)``; the reference *code* omits the
       ``1 / gamma2`` factor, so its effective word logit is ``gamma3 * gamma2`` times the paper's ``R``.  We keep
       the code's convention by default (to match reference numbers); ``paper_gamma2_factor=True`` applies the
       paper's ``1 / gamma2``.
    7. logits ``gamma3 * score(b, i)``.

Sentence-level score: ``gamma3 * cos(img_code_b, sent_emb_i)``.

Orientation.  Both logit matrices are ``B x B`` with **rows = images and columns = captions**:
``logits[b, i]`` scores image ``b`` against caption ``i``; labels are ``arange(B)`` (image ``b`` belongs to
caption ``b``).  As in the reference (docs/method.md#damsm-losses):

- ``loss0`` (``w_loss0`` / ``s_loss0``) = mean cross-entropy over the **rows**: each image picks its caption among
  the batch's captions (image -> caption retrieval);
- ``loss1`` (``w_loss1`` / ``s_loss1``) = mean cross-entropy over the **columns** (the transposed matrix): each
  caption picks its image among the batch's images (caption -> image retrieval).

Class masking.  Off-diagonal pairs with equal ``class_ids`` (same CUB species) are set to ``-inf`` before the
softmax, so same-class captions/images are not used as negatives.  The diagonal is never masked, so no row or
column is all ``-inf`` and the losses (and their gradients) stay finite; a batch in which every sample shares one
class therefore has losses of exactly 0.  ``class_ids=None`` masks nothing (COCO: ids are ``arange(N)``).

Total: ``L_DAMSM = w_loss0 + w_loss1 + s_loss0 + s_loss1`` (unweighted, as in pretraining).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "func_attention",
    "word_logits",
    "words_loss",
    "sentence_logits",
    "sentence_loss",
    "damsm_loss",
    "same_class_mask",
]

_EPS = 1e-8  # clamp of the product of norms in the cosine, as in the reference code

IdsLike = Union[Tensor, Sequence[int], None]


def _flatten_regions(context_regions: Tensor) -> tuple[Tensor, Optional[tuple[int, int]]]:
    """``B x D x H x W`` -> (``B x D x R``, ``(H, W)``); ``B x D x R`` passes through with ``None``."""
    if context_regions.dim() == 4:
        b, d, h, w = context_regions.shape
        return context_regions.reshape(b, d, h * w), (h, w)
    if context_regions.dim() == 3:
        return context_regions, None
    raise ValueError(f"region features must be B x D x H x W or B x D x R, got shape {tuple(context_regions.shape)}")


def _attention_weights(s: Tensor, gamma1: float, word_mask: Optional[Tensor]) -> Tensor:
    """Steps 2-3: ``s`` is ``(..., T, R)``; softmax over words per region, then ``gamma1`` and softmax over regions.

    ``word_mask`` (broadcastable to ``(..., T)``, True = real word) removes padding from the word softmax.  Every
    region must see at least one real word (cap_len >= 1), so no column is all ``-inf``.
    """
    if word_mask is not None:
        s = s.masked_fill(~word_mask.unsqueeze(-1), float("-inf"))
    s_bar = torch.softmax(s, dim=-2)  # over words, for each region
    return torch.softmax(gamma1 * s_bar, dim=-1)  # over regions, for each word


def func_attention(query_words: Tensor, context_regions: Tensor, gamma1: float,
                   word_mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """AttnGAN's word-to-region attention for ``B`` (caption, image) pairs, pair ``k`` = row ``k`` of each input.

    Args:
        query_words: ``B x D x T`` word features (one caption per row, or one caption repeated ``B`` times).
        context_regions: ``B x D x H x W`` (or ``B x D x R``) region features.
        gamma1: sharpness of the softmax over regions.
        word_mask: optional ``B x T`` bool, True for real words; padding is excluded from the per-region softmax
            over words.  Without it all ``T`` words count as real (slice the caption to its length first).

    Returns:
        ``weighted_context`` ``B x D x T`` (column ``t`` = region context ``c_t`` of word ``t``) and the attention
        map ``B x T x H x W`` (``B x T x R`` for 3-D input); each word's map sums to 1 over regions.
    """
    if query_words.dim() != 3:
        raise ValueError(f"query_words must be B x D x T, got shape {tuple(query_words.shape)}")
    ctx, hw = _flatten_regions(context_regions)
    if ctx.shape[:2] != query_words.shape[:2]:
        raise ValueError(f"batch/feature size mismatch: words {tuple(query_words.shape)} vs regions "
                         f"{tuple(context_regions.shape)}")
    s = torch.bmm(query_words.transpose(1, 2), ctx)  # B x T x R
    attn = _attention_weights(s, gamma1, word_mask)  # B x T x R
    weighted = torch.bmm(ctx, attn.transpose(1, 2))  # B x D x T
    if hw is not None:
        attn = attn.reshape(attn.shape[0], attn.shape[1], *hw)
    return weighted, attn


def same_class_mask(class_ids: IdsLike, batch_size: int, device: torch.device) -> Optional[Tensor]:
    """``B x B`` bool, True where ``i != j`` and ``class_ids[i] == class_ids[j]`` (pairs to exclude); None if no ids."""
    if class_ids is None:
        return None
    ids = torch.as_tensor(class_ids, device=device).reshape(-1)
    if ids.numel() != batch_size:
        raise ValueError(f"class_ids has {ids.numel()} entries for a batch of {batch_size}")
    mask = ids.unsqueeze(0) == ids.unsqueeze(1)
    return mask & ~torch.eye(batch_size, dtype=torch.bool, device=device)


def _apply_mask(logits: Tensor, class_ids: IdsLike) -> Tensor:
    mask = same_class_mask(class_ids, logits.shape[0], logits.device)
    return logits if mask is None else logits.masked_fill(mask, float("-inf"))


def _two_way_ce(logits: Tensor) -> tuple[Tensor, Tensor]:
    """Cross-entropy over rows (loss0) and over columns (loss1), labels ``arange(B)``."""
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels), F.cross_entropy(logits.t(), labels)


def _check_lengths(cap_lens: Union[Tensor, Sequence[int]], batch_size: int, max_len: int,
                   device: torch.device) -> Tensor:
    lens = torch.as_tensor(cap_lens, device=device).reshape(-1).long()
    if lens.numel() != batch_size:
        raise ValueError(f"cap_lens has {lens.numel()} entries for a batch of {batch_size}")
    lo, hi = int(lens.min()), int(lens.max())
    if lo < 1 or hi > max_len:
        raise ValueError(f"caption lengths must lie in [1, {max_len}] (words_emb has T={max_len}), got [{lo}, {hi}]")
    return lens


def word_logits(region_feats: Tensor, words_emb: Tensor, cap_lens: Union[Tensor, Sequence[int]],
                class_ids: IdsLike, gamma1: float, gamma2: float, gamma3: float,
                paper_gamma2_factor: bool = False) -> tuple[Tensor, list[Tensor]]:
    """Masked word-level logits ``gamma3 * score(image b, caption i)``, ``B x B``, rows = images, cols = captions.

    All ``B x B`` pairs are computed at once (``B x B x T x R`` attention); padded words (positions
    ``>= cap_lens[i]``) are zeroed and masked out, so their values never enter the result.

    Returns:
        ``(logits, attn_maps)`` where ``attn_maps[i]`` (``cap_lens[i] x H x W``, detached) is caption ``i``'s
        attention over the regions of its own image ``i``, for visualisation.
    """
    if words_emb.dim() != 3:
        raise ValueError(f"words_emb must be B x D x T, got shape {tuple(words_emb.shape)}")
    ctx, hw = _flatten_regions(region_feats)
    b, d, t = words_emb.shape
    if ctx.shape[:2] != (b, d):
        raise ValueError(f"batch/feature size mismatch: words {tuple(words_emb.shape)} vs regions "
                         f"{tuple(region_feats.shape)}")
    lens = _check_lengths(cap_lens, b, t, words_emb.device)
    word_mask = torch.arange(t, device=words_emb.device).unsqueeze(0) < lens.unsqueeze(1)  # B x T
    words = words_emb.masked_fill(~word_mask.unsqueeze(1), 0.0)  # padding garbage never enters any arithmetic

    # Pair (image b, caption i): s[b, i, t, r] = e_{i,t} . v_{b,r}
    s = torch.einsum("idt,bdr->bitr", words, ctx)
    attn = _attention_weights(s, gamma1, word_mask.unsqueeze(0))  # B_img x B_cap x T x R
    context = torch.einsum("bitr,bdr->bidt", attn, ctx)  # B_img x B_cap x D x T
    dot = torch.einsum("bidt,idt->bit", context, words)
    norms = context.norm(dim=2) * words.norm(dim=1).unsqueeze(0)
    cos = dot / norms.clamp_min(_EPS)  # B_img x B_cap x T
    score = torch.logsumexp((gamma2 * cos).masked_fill(~word_mask.unsqueeze(0), float("-inf")), dim=-1)
    if paper_gamma2_factor:
        score = score / gamma2
    logits = _apply_mask(gamma3 * score, class_ids)

    maps = []
    for i, n in enumerate(lens.tolist()):
        a = attn[i, i, :n].detach()
        maps.append(a.reshape(n, *hw) if hw is not None else a)
    return logits, maps


def words_loss(region_feats: Tensor, words_emb: Tensor, cap_lens: Union[Tensor, Sequence[int]],
               class_ids: IdsLike, gamma1: float, gamma2: float, gamma3: float,
               paper_gamma2_factor: bool = False) -> tuple[Tensor, Tensor, list[Tensor]]:
    """DAMSM word-level (attention) loss.

    Args:
        region_feats: ``B x D x H x W`` region features; row ``b`` is image ``b``.
        words_emb: ``B x D x T`` word features; row ``i`` is caption ``i`` (of image ``i``), padded to ``T``.
        cap_lens: ``(B,)`` true caption lengths, each in ``[1, T]``.
        class_ids: ``(B,)`` class ids; off-diagonal same-class pairs are not negatives.  ``None``: no masking.
        gamma1, gamma2, gamma3: smoothing factors (attention sharpness, word aggregation, logit scale).
        paper_gamma2_factor: multiply the aggregated score by ``1 / gamma2`` (AttnGAN paper); default False keeps
            the reference code's convention (factor omitted).

    Returns:
        ``(loss0, loss1, attn_maps)``: cross-entropy image -> captions (rows), caption -> images (columns), and
        per-caption attention maps (see :func:`word_logits`).
    """
    logits, maps = word_logits(region_feats, words_emb, cap_lens, class_ids, gamma1, gamma2, gamma3,
                               paper_gamma2_factor)
    loss0, loss1 = _two_way_ce(logits)
    return loss0, loss1, maps


def sentence_logits(img_code: Tensor, sent_emb: Tensor, class_ids: IdsLike, gamma3: float) -> Tensor:
    """Masked sentence-level logits ``gamma3 * cos(img_code_b, sent_emb_i)``, rows = images, cols = captions."""
    if img_code.dim() != 2 or img_code.shape != sent_emb.shape:
        raise ValueError(f"img_code and sent_emb must both be B x D, got {tuple(img_code.shape)} and "
                         f"{tuple(sent_emb.shape)}")
    dot = img_code @ sent_emb.t()
    norms = img_code.norm(dim=1).unsqueeze(1) * sent_emb.norm(dim=1).unsqueeze(0)
    return _apply_mask(gamma3 * dot / norms.clamp_min(_EPS), class_ids)


def sentence_loss(img_code: Tensor, sent_emb: Tensor, class_ids: IdsLike, gamma3: float) -> tuple[Tensor, Tensor]:
    """DAMSM sentence-level loss: ``(loss0, loss1)`` = cross-entropy over rows (image -> captions) and columns."""
    return _two_way_ce(sentence_logits(img_code, sent_emb, class_ids, gamma3))


def damsm_loss(region_feats: Tensor, img_code: Tensor, words_emb: Tensor, sent_emb: Tensor,
               cap_lens: Union[Tensor, Sequence[int]], class_ids: IdsLike, gamma1: float, gamma2: float,
               gamma3: float, paper_gamma2_factor: bool = False) -> dict:
    """Full DAMSM loss: keys ``w_loss0, w_loss1, s_loss0, s_loss1, total`` (unweighted sum) and ``attn_maps``."""
    w0, w1, maps = words_loss(region_feats, words_emb, cap_lens, class_ids, gamma1, gamma2, gamma3,
                              paper_gamma2_factor)
    s0, s1 = sentence_loss(img_code, sent_emb, class_ids, gamma3)
    return {"w_loss0": w0, "w_loss1": w1, "s_loss0": s0, "s_loss1": s1, "total": w0 + w1 + s0 + s1,
            "attn_maps": maps}
