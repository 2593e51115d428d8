"""What a run needs recorded to be repeated: git commit (and dirty flag), Python and key package versions."""

from __future__ import annotations

import platform
from importlib import metadata
import subprocess
import sys
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def environment() -> dict:
    root = Path(__file__).resolve().parents[2]
    info: dict = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["git_commit"] = commit or None
        info["git_dirty"] = bool(dirty) if commit else None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    # versions from the installed distributions' metadata: importing torch_fidelity and torchvision only to read
    # __version__ cost about 2 s in every notebook kernel
    for name, dist in (("torch", "torch"), ("torchvision", "torchvision"), ("numpy", "numpy"), ("PIL", "pillow"),
                       ("torch_fidelity", "torch-fidelity")):
        mod = sys.modules.get(name)  # already imported (torch always is): its own version string (e.g. +cu130)
        try:
            info[name] = getattr(mod, "__version__", None) or metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[name] = None
    return info
