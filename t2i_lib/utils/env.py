"""What a run needs recorded to be repeated: git commit (and dirty flag), Python and key package versions."""

from __future__ import annotations

import platform
import subprocess
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
    for name in ("torch", "torchvision", "numpy", "PIL", "torch_fidelity"):
        try:
            mod = __import__(name)
            info[name] = getattr(mod, "__version__", "?")
        except ImportError:
            info[name] = None
    return info
