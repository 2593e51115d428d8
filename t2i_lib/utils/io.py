"""Atomic file writes and JSON helpers.

Every product the library writes goes through :func:`atomic_write_bytes` (temporary file in the same directory,
``fsync``, then ``os.replace``), so a crash or a full disk never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; the previous file (if any) stays intact on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; products get the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace variation: the form that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, "r", encoding="utf-8") as fh:
        return json.load(fh)


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


_HELD_LOCKS: dict[str, list[int]] = {}  # lock file -> [fd, depth] held by this process


@contextlib.contextmanager
def dir_lock(path: str | os.PathLike):
    """Exclusive lock on directory ``path`` while the block runs (``.<name>.lock`` beside it).

    A second process asking for the same directory waits (logged) until the first one leaves the block, then
    finds its finished work (reuse) or its checkpoints (resume), instead of both writing the same files.  Re-entrant
    within one process; released by the OS if the process dies.  POSIX advisory locks (local file systems, NFS
    with lock support)."""
    import fcntl
    import logging

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = str(path.parent / f".{path.name}.lock")
    if lock in _HELD_LOCKS:
        _HELD_LOCKS[lock][1] += 1
    else:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            logging.getLogger(__name__).info("%s is in use by another process (pid %s): waiting for it",
                                             path.name, holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD_LOCKS[lock] = [fd, 1]
    try:
        yield
    finally:
        _HELD_LOCKS[lock][1] -= 1
        if _HELD_LOCKS[lock][1] == 0:
            fd = _HELD_LOCKS.pop(lock)[0]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def flatten_dict(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (nested dicts only; lists and other values are leaves)."""
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
