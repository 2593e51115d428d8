"""Data: tokenizer/vocabulary, the canonical dataset, the synthetic ``caption-shapes`` dataset, AttnGAN adapters."""

from .dataset import CanonicalWriter, CaptionDataset, dataset_summary, make_loader, read_manifest, read_records
from .errors import (BadImageError, CaptionFileError, DataError, LayoutError, ManifestError, MissingKeyError,
                     UnsafePickleError, VocabularyError)
from .text import Vocabulary, fixed_length, sort_by_length, tokenize

__all__ = [
    "BadImageError", "CanonicalWriter", "CaptionDataset", "CaptionFileError", "DataError", "LayoutError",
    "ManifestError", "MissingKeyError", "UnsafePickleError", "Vocabulary", "VocabularyError", "dataset_summary",
    "fixed_length", "make_loader", "read_manifest", "read_records", "sort_by_length", "tokenize",
]
