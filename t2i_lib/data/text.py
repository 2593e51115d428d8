"""Caption cleaning, tokenisation, vocabulary and fixed-length caption encoding, exactly as the AttnGAN reference.

Reference behaviour (docs/datasets.md#captions-and-tokens):

- the two-character sequence U+FFFD U+FFFD is replaced by a space; the caption is lower-cased and tokenised with
  ``nltk.tokenize.RegexpTokenizer(r'\\w+')`` (punctuation dropped); every token is ASCII-encoded with errors
  ignored and tokens that become empty are dropped; a caption with no token left is skipped;
- index 0 of the vocabulary is ``<end>``, used only as padding;
- captions are encoded to a fixed ``max_words`` (18 by default).  Shorter captions are right-padded with 0.
  Longer captions are, in the reference, **not truncated**: ``max_words`` positions are drawn at random without
  replacement and sorted, so different words are dropped every time the caption is loaded
  (``long_caption_mode="subsample"``).  ``long_caption_mode="truncate"`` keeps the first ``max_words`` words
  instead (deterministic; handy for evaluation).  Either way ``cap_len = min(len, max_words)``.

Our vocabulary order is deterministic (words sorted), unlike the reference's dictionary-iteration order; to reuse
released DAMSM encoders, import the original vocabulary with :meth:`Vocabulary.from_captions_pickle`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from nltk.tokenize import RegexpTokenizer

from ..utils.io import canonical_json, sha256_hex
from .errors import VocabularyError

PAD_TOKEN = "<end>"
LONG_CAPTION_MODES = ("subsample", "truncate")
_TOKENIZER = RegexpTokenizer(r"\w+")


def tokenize(caption: str) -> list[str]:
    """Tokens of one caption, exactly as AttnGAN's ``load_captions`` (may be empty: then skip the caption)."""
    text = caption.replace("\ufffd\ufffd", " ").lower()
    tokens = []
    for tok in _TOKENIZER.tokenize(text):
        tok = tok.encode("ascii", "ignore").decode("ascii")
        if tok:
            tokens.append(tok)
    return tokens


def clean_caption_lines(lines: Iterable[str]) -> list[tuple[str, list[str]]]:
    """(raw caption, tokens) for every line that yields at least one token; empty lines are skipped."""
    out = []
    for line in lines:
        raw = line.strip()
        if not raw:
            continue
        toks = tokenize(raw)
        if toks:
            out.append((raw, toks))
    return out


@dataclass(frozen=True)
class Vocabulary:
    """Word list with index 0 reserved for ``<end>`` (padding).  Immutable; hashable by content."""

    idx_to_word: tuple[str, ...]
    source: str = "built"  # "built" (from captions) or "captions.pickle:<path>"

    def __post_init__(self):
        if not self.idx_to_word or self.idx_to_word[0] != PAD_TOKEN:
            raise VocabularyError(f"vocabulary index 0 must be {PAD_TOKEN!r}")
        if len(set(self.idx_to_word)) != len(self.idx_to_word):
            raise VocabularyError("vocabulary has duplicated words")
        object.__setattr__(self, "_w2i", {w: i for i, w in enumerate(self.idx_to_word)})

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def build(cls, tokenised_captions: Iterable[Sequence[str]], min_count: int = 1) -> "Vocabulary":
        """Vocabulary of every word seen ``min_count`` times or more (reference: no threshold), sorted."""
        counts = Counter(w for toks in tokenised_captions for w in toks)
        words = sorted(w for w, c in counts.items() if c >= min_count and w != PAD_TOKEN)
        return cls((PAD_TOKEN, *words))

    @classmethod
    def from_captions_pickle(cls, path: str | Path) -> "Vocabulary":
        """Import the vocabulary of an AttnGAN ``captions.pickle`` = [train_caps, test_caps, ixtoword, wordtoix]."""
        from .safe_pickle import load_pickle

        obj = load_pickle(path)
        if not isinstance(obj, (list, tuple)) or len(obj) != 4:
            raise VocabularyError(f"{path}: expected [train_caps, test_caps, ixtoword, wordtoix], got {type(obj)}")
        ixtoword = obj[2]
        if not isinstance(ixtoword, dict) or not ixtoword:
            raise VocabularyError(f"{path}: ixtoword is not a non-empty dict")
        n = len(ixtoword)
        if sorted(ixtoword) != list(range(n)):
            raise VocabularyError(f"{path}: ixtoword indices are not 0..{n - 1}")
        words = tuple(str(ixtoword[i]) for i in range(n))
        if words[0] != PAD_TOKEN:
            raise VocabularyError(f"{path}: index 0 is {words[0]!r}, expected {PAD_TOKEN!r}")
        return cls(words, source=f"captions.pickle:{Path(path).name}")

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        try:
            voc = cls(tuple(d["idx_to_word"]), source=d.get("source", "built"))
        except (KeyError, TypeError) as exc:
            raise VocabularyError(f"malformed vocabulary record: {exc!r}") from exc
        if "hash" in d and d["hash"] != voc.hash:
            raise VocabularyError(f"vocabulary hash mismatch: stored {d['hash']}, computed {voc.hash}")
        return voc

    def to_dict(self) -> dict:
        return {"idx_to_word": list(self.idx_to_word), "source": self.source, "hash": self.hash, "size": len(self)}

    # ---- queries --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.idx_to_word)

    def __contains__(self, word: str) -> bool:
        return word in self._w2i  # type: ignore[attr-defined]

    @property
    def hash(self) -> str:
        """Content hash (16 hex) stored with datasets and text-encoder checkpoints to refuse mismatches."""
        return sha256_hex(canonical_json(list(self.idx_to_word)))[:16]

    def encode(self, tokens: Sequence[str], strict: bool = True) -> list[int]:
        """Token ids; unknown words raise (``strict``) or are dropped, as the reference never meets them."""
        ids = []
        for w in tokens:
            i = self._w2i.get(w)  # type: ignore[attr-defined]
            if i is None:
                if strict:
                    raise VocabularyError(f"word {w!r} is not in the vocabulary ({self.source}, {len(self)} words)")
                continue
            ids.append(i)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.idx_to_word[int(i)] for i in ids if int(i) != 0)


def fixed_length(ids: Sequence[int], max_words: int, mode: str = "subsample",
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
    """Encode a caption to ``max_words`` ids (0-padded) and its length, as AttnGAN's ``get_caption``.

    ``mode="subsample"`` (reference) keeps ``max_words`` randomly chosen words in order when the caption is longer;
    it needs ``rng``.  ``mode="truncate"`` keeps the first ``max_words``.
    """
    if mode not in LONG_CAPTION_MODES:
        raise ValueError(f"long_caption_mode must be one of {LONG_CAPTION_MODES}, got {mode!r}")
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    n = len(ids)
    if n == 0:
        raise ValueError("empty caption (captions with no token are skipped when a dataset is prepared)")
    out = np.zeros(max_words, dtype=np.int64)
    if n <= max_words:
        out[:n] = ids
        return out, n
    if mode == "truncate":
        out[:] = ids[:max_words]
    else:
        if rng is None:
            raise ValueError("long_caption_mode='subsample' needs an rng")
        keep = np.sort(rng.choice(n, size=max_words, replace=False))
        out[:] = np.asarray(ids, dtype=np.int64)[keep]
    return out, max_words


def sort_by_length(cap_lens):
    """Indices that sort a batch by caption length, decreasing (as ``prepare_data``), and their inverse.

    ``batch_sorted = batch[order]``; ``batch_sorted[inverse] == batch`` (use ``inverse`` to un-permute).
    """
    import torch

    lens = torch.as_tensor(cap_lens)
    order = torch.sort(lens, descending=True, stable=True).indices
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return order, inverse
