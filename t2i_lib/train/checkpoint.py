"""Checkpoints: dicts of tensors and JSON-able values, written atomically, loaded with ``weights_only=True``.

Layout in a run directory::

    checkpoints/ckpt_<step:06d>.pt   one file per save (the step/epoch counter of the run)
    checkpoints/latest.json          {"file": "ckpt_000012.pt", "step": 12, "sha256": ...} (atomic pointer)

A checkpoint dict holds ``format``, ``kind`` (e.g. "damsm", "gan"), ``lib_version``, ``step``, ``config`` (the
resolved config as a dict), ``config_hash``, ``model_kwargs``, ``state`` (module state dicts), ``optim``, ``rng``
and anything JSON-able the trainer adds.  :func:`load` refuses a truncated or corrupted file with
:class:`CheckpointError` naming it; :func:`load_latest` falls back to the newest readable checkpoint.
"""

from __future__ import annotations

import io
import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..utils.io import atomic_write_bytes, read_json, write_json

log = logging.getLogger(__name__)

FORMAT = 1
_CKPT_RE = re.compile(r"^ckpt_(\d{6,})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupted or does not match what the caller expects."""


def rng_state() -> dict[str, Any]:
    """RNG states of Python, NumPy and torch (CPU, CUDA) as tensors and plain values (weights_only-safe)."""
    import torch

    np_state = np.random.get_state()
    py_state = random.getstate()
    out = {"torch": torch.get_rng_state(),
           "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                     "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
           "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64),
                      "gauss": py_state[2]}}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(ckpt_dir: str | Path, step: int, payload: dict[str, Any], keep_last: int = 0) -> Path:
    """Write ``payload`` (plus format/version/step) as ``ckpt_<step>.pt`` atomically, then move ``latest.json``.

    ``keep_last > 0`` deletes older ``ckpt_*.pt`` beyond the newest ``keep_last`` (files named in ``keep`` of
    ``latest.json``, e.g. the best one, are kept).
    """
    import torch

    ckpt_dir = Path(ckpt_dir)
    record = {"format": FORMAT, "lib_version": __version__, "step": int(step), **payload}
    buf = io.BytesIO()
    torch.save(record, buf)
    data = buf.getvalue()
    path = atomic_write_bytes(ckpt_dir / f"ckpt_{int(step):06d}.pt", data)
    from ..utils.io import sha256_hex

    write_json(ckpt_dir / "latest.json", {"file": path.name, "step": int(step), "sha256": sha256_hex(data)})
    if keep_last > 0:
        protected = set(read_json(ckpt_dir / "protected.json")) if (ckpt_dir / "protected.json").exists() else set()
        olds = sorted(list_checkpoints(ckpt_dir))[:-keep_last]
        for _, p in olds:
            if p.name not in protected:
                p.unlink(missing_ok=True)
    return path


def protect(ckpt_dir: str | Path, filename: str) -> None:
    """Never delete ``filename`` when pruning (e.g. the best-by-validation checkpoint)."""
    ckpt_dir = Path(ckpt_dir)
    p = ckpt_dir / "protected.json"
    names = set(read_json(p)) if p.exists() else set()
    names.add(filename)
    write_json(p, sorted(names))


def list_checkpoints(ckpt_dir: str | Path) -> list[tuple[int, Path]]:
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    out = []
    for p in ckpt_dir.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def load(path: str | Path, map_location: str = "cpu", expect: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; ``expect`` = {field: value} that must match (e.g. kind,
    vocab_hash, config_hash, family); a mismatch is a :class:`CheckpointError` naming the field and both values."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): truncated write?")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure: name the file, say what to do
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupted?): {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a t2i_lib checkpoint (format {FORMAT})")
    for key, want in (expect or {}).items():
        have = ckpt.get(key)
        if have != want:
            raise CheckpointError(f"checkpoint {path} does not match: {key} is {have!r}, expected {want!r}")
    return ckpt


def load_latest(ckpt_dir: str | Path, map_location: str = "cpu",
                expect: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The newest readable checkpoint in ``ckpt_dir`` (None if there is none).

    A corrupted newest file is reported and skipped in favour of the previous one; a *mismatching* checkpoint
    (``expect``) is an error, never skipped.
    """
    ckpts = list_checkpoints(ckpt_dir)
    for step, p in reversed(ckpts):
        try:
            return load(p, map_location, expect)
        except CheckpointError as exc:
            if "does not match" in str(exc):
                raise
            log.warning("%s; falling back to the previous checkpoint", exc)
    return None
