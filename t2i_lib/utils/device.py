"""Device selection: the caller passes a device; this only resolves "auto"."""

from __future__ import annotations


def resolve_device(name: str = "auto"):
    """"auto" -> cuda if available else cpu; anything else is passed to ``torch.device`` (with a clear error)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available here; use 'cpu' or 'auto'")
    return dev
