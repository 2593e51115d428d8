"""Project, data, results and cache roots: absolute from ``__file__``, overridable by environment variables.

- ``T2I_RESULTS_DIR``: results root (default ``<project>/results``); per profile ``<root>/<profile>/``.
- ``T2I_DATA_DIR``: raw datasets in AttnGAN layout (``birds/``, ``coco/``) (default ``<project>/data``).
- ``T2I_CACHE_DIR``: converted weights, reference statistics (default ``<project>/cache``).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_path(var: str, default: Path) -> Path:
    v = os.environ.get(var, "").strip()
    return Path(v).expanduser().resolve() if v else default


def results_root() -> Path:
    return _env_path("T2I_RESULTS_DIR", PROJECT_ROOT / "results")


def profile_dir(profile: str, results_dir: str | os.PathLike | None = None) -> Path:
    """``results/<profile>`` (or ``results_dir`` when given and non-empty)."""
    if results_dir:
        return Path(results_dir).expanduser().resolve()
    return results_root() / profile


def data_root() -> Path:
    return _env_path("T2I_DATA_DIR", PROJECT_ROOT / "data")


def cache_root() -> Path:
    return _env_path("T2I_CACHE_DIR", PROJECT_ROOT / "cache")
