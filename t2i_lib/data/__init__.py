"""Data: tokenizer/vocabulary, the canonical dataset, the synthetic ``caption-shapes`` and ``caption-scenes`` datasets, AttnGAN adapters."""

from .attngan import check_layout, prepare_coco, prepare_cub
from .dataset import CanonicalWriter, CaptionDataset, dataset_summary, make_loader, read_manifest, read_records
from .errors import (BadImageError, CaptionFileError, DataError, LayoutError, ManifestError, MissingKeyError,
                     UnsafePickleError, VocabularyError)
from .synthetic import ATTRIBUTE_SCHEMA, prepare_synthetic
from .text import Vocabulary, fixed_length, sort_by_length, tokenize

__all__ = [
    "ATTRIBUTE_SCHEMA", "check_layout", "prepare_coco", "prepare_cub", "prepare_synthetic",
    "BadImageError", "CanonicalWriter", "CaptionDataset", "CaptionFileError", "DataError", "LayoutError",
    "ManifestError", "MissingKeyError", "UnsafePickleError", "Vocabulary", "VocabularyError", "dataset_summary",
    "fixed_length", "make_loader", "read_manifest", "read_records", "sort_by_length", "tokenize",
]
