"""Restricted loading of the metadata pickles shipped with the AttnGAN dataset layouts.

The files (``filenames.pickle``, ``class_info.pickle``, ``captions.pickle``) were written by Python 2.  They
contain only plain containers, strings and numbers, plus NumPy int64 scalars in ``class_info.pickle``
(docs/datasets.md#metadata-pickles).  :func:`load_pickle` therefore admits exactly those, and NumPy's scalar/array
reconstruction, and refuses every other global with :class:`UnsafePickleError`, so a pickle that would execute
code is never run.

Copies of protocol-0 pickles that went through a Windows line-ending conversion fail with
``No module named 'numpy.core.multiarray\\r'``; :func:`load_pickle` detects that symptom, repairs CRLF -> LF,
and reports the repair through ``warnings`` (and in the returned info when ``return_info=True``).
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, UnsafePickleError

# (module, name) pairs a metadata pickle may reference.  NumPy moved ``numpy.core`` to ``numpy._core`` in 2.0;
# pickles written by NumPy 1.x name the former.
_ALLOWED: dict[tuple[str, str], Any] = {}


def _numpy_globals() -> None:
    try:
        from numpy._core import multiarray as _ma  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray as _ma  # type: ignore
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        _ALLOWED[(mod, "scalar")] = _ma.scalar
        _ALLOWED[(mod, "_reconstruct")] = _ma._reconstruct
    for mod in ("numpy", "numpy.core.numeric", "numpy._core.numeric"):
        _ALLOWED[(mod, "ndarray")] = np.ndarray
        _ALLOWED[(mod, "dtype")] = np.dtype
    # Python 2 builtins that a protocol-0/2 pickle of plain containers can name.
    import builtins

    for name in ("set", "frozenset", "list", "dict", "tuple", "int", "float", "complex", "bytearray"):
        _ALLOWED[("__builtin__", name)] = getattr(builtins, name)
        _ALLOWED[("builtins", name)] = getattr(builtins, name)
    import codecs

    # Python-3 ``bytes`` pickled with protocol <= 2 are written as _codecs.encode(text, "latin1").

    _ALLOWED[("_codecs", "encode")] = codecs.encode


_numpy_globals()


def _printable(name: str) -> str:
    """``name`` as is, or its repr when it holds control characters (a CRLF-damaged "scalar\\r")."""
    return name if name.isprintable() else repr(name)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh, source: str):
        super().__init__(fh, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        fn = _ALLOWED.get((module, name))
        if fn is None:
            raise UnsafePickleError(
                f"{self._source}: refusing to load global {_printable(module)}.{_printable(name)}: metadata "
                "pickles may contain only plain containers, strings, numbers and NumPy arrays/scalars "
                "(this file could execute code)"
            )
        return fn


def _to_plain(obj: Any) -> Any:
    """NumPy scalars -> Python numbers; bytes (Python-2 ``str``) -> text; containers recursively."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("latin1")
    if isinstance(obj, list):
        return [_to_plain(x) for x in obj]
    if isinstance(obj, tuple):
        return tuple(_to_plain(x) for x in obj)
    if isinstance(obj, dict):
        return {_to_plain(k): _to_plain(v) for k, v in obj.items()}
    return obj


def loads(data: bytes, source: str = "<bytes>", plain: bool = True) -> Any:
    """Restricted ``pickle.loads``; ``plain`` converts NumPy scalars to Python numbers."""
    obj = _RestrictedUnpickler(io.BytesIO(data), source).load()
    return _to_plain(obj) if plain else obj


def _crlf_converted(data: bytes) -> bool:
    """True for a text (protocol-0) pickle whose every line feed is preceded by a carriage return.

    That is the signature of a Windows line-ending conversion: protocol-0 opcodes end every line with LF, strings
    are escaped, and no opcode line of a genuine pickle ends with CR.
    """
    if data[:1] == b"\x80":  # protocol >= 2 header: binary, never converted on purpose
        return False
    n_lf = data.count(b"\n")
    return n_lf > 0 and data.count(b"\r\n") == n_lf


def load_pickle(path: str | Path, plain: bool = True, return_info: bool = False):
    """Load a metadata pickle with the restricted unpickler, repairing CRLF-damaged protocol-0 files.

    A CRLF-converted protocol-0 pickle either fails (``numpy.core.multiarray\\r`` is not an allowed global) or,
    worse, loads with a carriage return glued to every string (``V`` opcodes keep it).  Such a file is detected
    from its line endings, repaired (CRLF -> LF) before loading, and the repair is reported through ``warnings``
    and, with ``return_info=True``, as ``info["repaired_crlf"]``.  If an unrepaired load fails and the file holds
    CRLF pairs, the repair is tried too.

    Raises :class:`UnsafePickleError` for forbidden globals (in the file as given or as repaired) and
    :class:`DataError` naming the file otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pickle file not found: {path}")
    data = path.read_bytes()
    if not data:
        raise DataError(f"pickle file is empty (0 bytes): {path}")
    info = {"path": str(path), "repaired_crlf": False}
    repaired = data.replace(b"\r\n", b"\n")
    if _crlf_converted(data):
        attempts = [(repaired, True), (data, False)]
    elif b"\r\n" in data and data[:1] != b"\x80":
        attempts = [(data, False), (repaired, True)]
    else:
        attempts = [(data, False)]
    errors = []
    unsafe: UnsafePickleError | None = None
    for n, (blob, is_repair) in enumerate(attempts):
        try:
            obj = loads(blob, str(path), plain)
        except UnsafePickleError as exc:
            # A refused global is final for the repaired text; in the unrepaired text it may be a damaged name
            # ("numpy.core.multiarray\r"), so the repair still gets its turn.  Nothing was executed either way.
            if is_repair or n == len(attempts) - 1:
                raise
            unsafe = exc
            continue
        except Exception as exc:  # noqa: BLE001 - any unpickling failure gets the file named
            errors.append((is_repair, exc))
            continue
        if is_repair:
            info["repaired_crlf"] = True
            warnings.warn(f"{path}: repaired CRLF line endings of a protocol-0 pickle", stacklevel=2)
        return (obj, info) if return_info else obj
    if unsafe is not None:
        raise unsafe
    detail = "; ".join(f"{'after CRLF->LF repair: ' if rep else ''}{exc!r}" for rep, exc in errors)
    raise DataError(f"cannot read pickle {path}: {detail}") from errors[-1][1]
