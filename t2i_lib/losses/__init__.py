"""Losses as pure functions of tensors: DAMSM (``damsm``) and the contrastive terms of 2312.10854 (``contrastive``).

Every hyper-parameter is an argument; formulas and reference conventions are in the module docstrings and
docs/method.md#damsm-losses and docs/method.md#nt-xent.
"""

from t2i_lib.losses.contrastive import fake_to_fake, fake_to_real, nt_xent, unpermute
from t2i_lib.losses.damsm import (
    damsm_loss,
    func_attention,
    same_class_mask,
    sentence_logits,
    sentence_loss,
    word_logits,
    words_loss,
)

__all__ = [
    "func_attention", "word_logits", "words_loss", "sentence_logits", "sentence_loss", "damsm_loss",
    "same_class_mask", "nt_xent", "fake_to_fake", "fake_to_real", "unpermute",
]
