"""The restricted unpickler on the metadata pickles of the AttnGAN layouts, as Python 2 + NumPy 1.x wrote them.

Fixture bytes are emitted opcode by opcode (see :func:`py2_int64_list_p0`), so the tests exercise what the released
``class_info.pickle`` files contain, not what the installed NumPy would write today.
"""

from __future__ import annotations

import os
import pickle
import struct

import numpy as np
import pytest

from t2i_lib.data.errors import DataError, UnsafePickleError
from t2i_lib.data.safe_pickle import load_pickle, loads

KEYS = ["001.Black_footed_Albatross/Black_Footed_Albatross_0046_18",
        "002.Laysan_Albatross/Laysan_Albatross_0002_1027",
        "200.Common_Yellowthroat/Common_Yellowthroat_0003_190521"]


# ------------------------------------------------------------------------------------------------------------
# Fixture builders: Python-2 pickle bytes
# ------------------------------------------------------------------------------------------------------------
def py2_filenames_p0(keys: list[str]) -> bytes:
    """Protocol-0 list of unicode strings, as Python 2 wrote ``filenames.pickle`` ('(lp0\\nV<key>\\np1\\na...')."""
    data = pickle.dumps(list(keys), protocol=0)
    assert data.startswith(b"(lp0\n") and all(b"V" + k.encode() + b"\n" in data for k in keys)
    return data


def _escaped_py2_str(raw: bytes) -> bytes:
    """Python 2's repr of a byte string inside a protocol-0 ``S`` opcode ('\\x01\\x00...')."""
    return b"'" + "".join(f"\\x{b:02x}" for b in raw).encode("ascii") + b"'"


def py2_int64_list_p0(values: list[int]) -> bytes:
    """Protocol-0 list of ``numpy.int64`` scalars as Python 2 + NumPy 1.x wrote ``class_info.pickle``.

    Each scalar is ``numpy.core.multiarray.scalar(numpy.dtype('i8', 0, 1) + state, '<8 raw bytes>')``; the
    ``scalar`` global and the dtype instance are memoised after the first element and referenced with ``g``.
    """
    out = [b"(lp0\n"]
    memo = 1
    for n, v in enumerate(values):
        raw = _escaped_py2_str(struct.pack("<q", v))
        if n == 0:
            out.append(b"cnumpy.core.multiarray\nscalar\np1\n"
                       b"(cnumpy\ndtype\np2\n(S'i8'\np3\nI0\nI1\ntp4\nRp5\n"
                       b"(I3\nS'<'\np6\nNNNI-1\nI-1\nI0\ntp7\nb"
                       b"S" + raw + b"\np8\ntp9\nRp10\na")
            memo = 11
        else:
            out.append(b"g1\n(g5\nS" + raw + b"\np%d\ntp%d\nRp%d\na" % (memo, memo + 1, memo + 2))
            memo += 3
    out.append(b".")
    return b"".join(out)


def py2_int64_list_p2(values: list[int]) -> bytes:
    """The same list in protocol 2 (cPickle ``HIGHEST_PROTOCOL``): BINPUT/BINGET memo, ``U`` short strings."""
    out = [b"\x80\x02]q\x00(" if len(values) > 1 else b"\x80\x02]q\x00"]
    memo = 1
    for n, v in enumerate(values):
        raw = b"U\x08" + struct.pack("<q", v)
        if n == 0:
            out.append(b"cnumpy.core.multiarray\nscalar\nq\x01"
                       b"cnumpy\ndtype\nq\x02U\x02i8q\x03K\x00K\x01\x87q\x04Rq\x05"
                       b"(K\x03U\x01<q\x06NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x07b"
                       + raw + b"q\x08\x86q\x09Rq\x0a")
            memo = 11
        else:
            out.append(b"h\x01h\x05" + raw + b"q" + bytes([memo]) + b"\x86q" + bytes([memo + 1])
                       + b"Rq" + bytes([memo + 2]))
            memo += 3
    out.append(b"e." if len(values) > 1 else b"a.")
    return b"".join(out)


def crlf(data: bytes) -> bytes:
    """What a Windows line-ending conversion does to a text file."""
    return data.replace(b"\n", b"\r\n")


class _Evil:
    """Unpickling an instance would run a shell command (via ``__reduce__``)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


# ------------------------------------------------------------------------------------------------------------
# Python-2 metadata pickles
# ------------------------------------------------------------------------------------------------------------
def test_filenames_protocol0_unicode_list(tmp_path):
    data = py2_filenames_p0(KEYS)
    assert b"\naV002.Laysan_Albatross/Laysan_Albatross_0002_1027\np2\n" in data  # APPEND, UNICODE, PUT
    path = tmp_path / "filenames.pickle"
    path.write_bytes(data)
    obj, info = load_pickle(path, return_info=True)
    assert obj == KEYS and all(type(k) is str for k in obj)
    assert info["repaired_crlf"] is False


def test_python2_byte_strings_become_text():
    # Python 2 ``str`` (S opcode, protocol 0; U opcode, protocol 2) with non-ASCII latin-1 bytes.
    assert loads(b"(lp0\nS'abc'\np1\naS'caf\\xe9'\np2\na.") == ["abc", "caf\u00e9"]
    assert loads(b"\x80\x02]q\x00(U\x03abcq\x01U\x04caf\xe9q\x02e.") == ["abc", "caf\u00e9"]


def test_class_info_protocol0_numpy1_int64_scalars(tmp_path):
    ids = [1, 1, 2, 200]
    data = py2_int64_list_p0(ids)
    assert b"cnumpy.core.multiarray\nscalar\n" in data and b"cnumpy\ndtype\n" in data
    assert b"numpy._core" not in data
    path = tmp_path / "class_info.pickle"
    path.write_bytes(data)
    obj = load_pickle(path)
    assert obj == ids and all(type(c) is int for c in obj)
    raw = load_pickle(path, plain=False)
    assert all(isinstance(c, np.int64) for c in raw) and [int(c) for c in raw] == ids


def test_class_info_protocol2_numpy1_int64_scalars(tmp_path):
    ids = [3, 7, 150]
    path = tmp_path / "class_info.pickle"
    path.write_bytes(py2_int64_list_p2(ids))
    assert load_pickle(path) == ids
    single = tmp_path / "one.pickle"
    single.write_bytes(py2_int64_list_p2([42]))
    assert load_pickle(single) == [42]


def test_numpy2_pickles_load():
    """Pickles written by the installed NumPy (``numpy._core`` names, ``_codecs.encode``) load too."""
    assert loads(pickle.dumps([np.int64(5), np.int64(-2)], protocol=0)) == [5, -2]
    assert loads(pickle.dumps([np.int64(5)], protocol=2)) == [5]
    arr = loads(pickle.dumps(np.arange(4, dtype=np.int64), protocol=2))
    assert isinstance(arr, np.ndarray) and arr.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("which", ["filenames", "class_info"])
def test_crlf_damaged_protocol0_is_repaired(tmp_path, which):
    data = py2_filenames_p0(KEYS) if which == "filenames" else py2_int64_list_p0([1, 2, 200])
    expected = KEYS if which == "filenames" else [1, 2, 200]
    path = tmp_path / f"{which}.pickle"
    path.write_bytes(crlf(data))
    with pytest.warns(UserWarning, match="repaired CRLF"):
        obj, info = load_pickle(path, return_info=True)
    # Without the repair, filenames would load with a "\r" glued to every key and class_info would be refused.
    assert obj == expected
    assert info["repaired_crlf"] is True


def test_crlf_repair_is_not_applied_to_binary_pickles(tmp_path):
    path = tmp_path / "b.pickle"
    path.write_bytes(pickle.dumps(["line\r\nbreak", "x"], protocol=2))
    obj, info = load_pickle(path, return_info=True)
    assert obj == ["line\r\nbreak", "x"] and info["repaired_crlf"] is False


def test_partly_crlf_damaged_pickle_is_repaired(tmp_path):
    """Only some lines converted: the unrepaired load fails (damaged global name), then the repair succeeds."""
    data = py2_int64_list_p0([4, 5])
    damaged = data.replace(b"multiarray\nscalar\n", b"multiarray\r\nscalar\r\n")
    path = tmp_path / "class_info.pickle"
    path.write_bytes(damaged)
    with pytest.warns(UserWarning, match="repaired CRLF"):
        obj, info = load_pickle(path, return_info=True)
    assert obj == [4, 5] and info["repaired_crlf"] is True


# ------------------------------------------------------------------------------------------------------------
# Malicious pickles are refused and never executed
# ------------------------------------------------------------------------------------------------------------
def _malicious_variants(marker) -> dict[str, bytes]:
    cmd = f"touch {marker}"
    hand = b"cos\nsystem\n(S'" + cmd.encode() + b"'\ntR."
    return {
        "reduce-protocol0": pickle.dumps(_Evil(cmd), protocol=0),
        "reduce-protocol2": pickle.dumps(_Evil(cmd), protocol=2),
        "hand-made-cos-system": hand,
        "hand-made-crlf": crlf(hand),
        "inside-a-list": b"(lp0\nVok\np1\nacos\nsystem\n(S'" + cmd.encode() + b"'\ntRa.",
        "builtins-eval": b"c__builtin__\neval\n(S'__import__(\"os\").system(\"" + cmd.encode() + b"\")'\ntR.",
        "getattr": b"\x80\x02cbuiltins\ngetattr\nq\x00.",
    }


@pytest.mark.parametrize("variant", ["reduce-protocol0", "reduce-protocol2", "hand-made-cos-system",
                                     "hand-made-crlf", "inside-a-list", "builtins-eval", "getattr"])
def test_code_executing_pickle_is_refused(tmp_path, variant):
    marker = tmp_path / "pwned"
    data = _malicious_variants(marker)[variant]
    path = tmp_path / "filenames.pickle"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError) as exc_info:
        load_pickle(path)
    assert str(path) in str(exc_info.value)
    assert "refusing to load global" in str(exc_info.value)
    assert not marker.exists()


def test_plain_pickle_module_would_have_executed_it(tmp_path):
    """Sanity check of the fixture: the standard unpickler does run the command the restricted one refuses."""
    marker = tmp_path / "pwned"
    pickle.loads(_malicious_variants(marker)["hand-made-cos-system"])  # noqa: S301 - deliberate
    assert marker.exists()


# ------------------------------------------------------------------------------------------------------------
# Other failures name the file
# ------------------------------------------------------------------------------------------------------------
def test_missing_empty_and_garbage_files_name_the_file(tmp_path):
    missing = tmp_path / "nope.pickle"
    with pytest.raises(DataError, match="not found.*nope.pickle"):
        load_pickle(missing)
    empty = tmp_path / "empty.pickle"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.pickle"):
        load_pickle(empty)
    garbage = tmp_path / "garbage.pickle"
    garbage.write_bytes(b"this is not a pickle\r\nat all\r\n")
    with pytest.raises(DataError) as exc_info:
        load_pickle(garbage)
    assert not isinstance(exc_info.value, UnsafePickleError)
    assert str(garbage) in str(exc_info.value)
    truncated = tmp_path / "truncated.pickle"
    truncated.write_bytes(py2_int64_list_p0([1, 2])[:-10])
    with pytest.raises(DataError, match="truncated.pickle"):
        load_pickle(truncated)
