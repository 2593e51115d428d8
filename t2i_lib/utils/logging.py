"""Logging and progress: tqdm as a convenience, ``logging`` and JSONL as the record."""

from __future__ import annotations

import logging
import os
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], enabled: bool | str = "auto", **kw) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar (notebook-aware) unless disabled.

    ``enabled``: True, False, or "auto" (on, unless the environment variable ``T2I_PROGRESS=off``).
    """
    if enabled == "auto":
        enabled = os.environ.get("T2I_PROGRESS", "on").lower() not in ("off", "0", "false", "no")
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    kw.setdefault("mininterval", 1.0)
    kw.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kw)


def get_logger(name: str = "t2i_lib") -> logging.Logger:
    """The library logger; configures a stderr handler once if the application has none."""
    logger = logging.getLogger(name)
    root = logging.getLogger("t2i_lib")
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(h)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logger
