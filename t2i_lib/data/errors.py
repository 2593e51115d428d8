"""Errors raised for bad input.  Every message names the file (or key) and what is wrong with it."""

from __future__ import annotations


class DataError(Exception):
    """Base class of all data-input errors."""


class LayoutError(DataError):
    """A dataset directory does not have the expected layout (missing folder, zipped ``text/``, ...)."""


class BadImageError(DataError):
    """An image file cannot be read: missing, zero bytes, truncated or not an image."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"bad image {self.path}: {reason}")


class CaptionFileError(DataError):
    """A caption file is missing, undecodable or has no usable caption."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"bad caption file {self.path}: {reason}")


class MissingKeyError(DataError):
    """A key listed in a split file has no image or caption file on disk."""


class ManifestError(DataError):
    """A canonical dataset's manifest or records are malformed (e.g. edited by hand with a wrong field)."""


class UnsafePickleError(DataError):
    """A pickle tried to load a global that is not on the allow-list (it could execute code)."""


class VocabularyError(DataError):
    """A vocabulary is malformed or does not match the one a checkpoint/dataset was built with."""
