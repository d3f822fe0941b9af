"""The MAT v5 element checker run before scipy.io.loadmat: what it lets through, what it
refuses (each refusal one of the inconsistencies that crash or mislead scipy's reader)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from viewfinder.dpm import matcheck
from viewfinder.dpm.matcheck import checked_mat_bytes
from viewfinder.errors import ModelError

HEADER = b"MATLAB 5.0 MAT-file, test".ljust(116, b" ") + b"\0" * 8 + b"\x00\x01IM"


# A plain MAT v5 writer (little-endian), written from the format's description.
def elem(kind: int, payload: bytes, size: int | None = None) -> bytes:
    n = len(payload) if size is None else size
    return struct.pack("<II", kind, n) + payload + b"\0" * (-len(payload) % 8)


def small(kind: int, payload: bytes) -> bytes:
    return struct.pack("<HH", kind, len(payload)) + payload.ljust(4, b"\0")


def matrix(mclass: int, dims: tuple[int, ...], body: bytes, name: bytes = b"",
           flags: int = 0) -> bytes:
    head = (elem(6, struct.pack("<II", mclass | flags, 0))
            + elem(5, struct.pack(f"<{len(dims)}i", *dims)) + elem(1, name))
    return elem(14, head + body)


def double(dims: tuple[int, ...], values: list[float], name: bytes = b"",
           kind: int = 9) -> bytes:
    return matrix(6, dims, elem(kind, struct.pack(f"<{len(values)}d", *values)), name)


def struct_of(fields: dict[bytes, bytes], name: bytes = b"", width: int = 8) -> bytes:
    names = b"".join(k.ljust(width, b"\0") for k in fields)
    body = small(5, struct.pack("<i", width)) + elem(1, names) + b"".join(fields.values())
    return matrix(2, (1, 1), body, name)


def mat(*variables: bytes) -> bytes:
    return HEADER + b"".join(variables)


GOOD = mat(struct_of({b"a": double((1, 3), [0, 1, 2]),
                      b"b": matrix(4, (1, 2), small(16, b"xy")),
                      b"c": matrix(1, (1, 2), double((1, 1), [5]) + elem(14, b""))},
                     name=b"model"))


def _deep(levels: int) -> bytes:
    inner = double((1, 1), [1.0])
    for _ in range(levels):
        inner = matrix(1, (1, 1), inner)
    return inner


def _with_name(var: bytes, name: bytes) -> bytes:
    """A top-level matrix renamed (its name element rebuilt, the tag's size fixed)."""
    body = var[8:]
    name_at = 16 + 16  # flags element, then a 2-D dims element
    old = struct.unpack_from("<I", body, name_at + 4)[0]
    rest = body[name_at + 8 + old + (-old % 8):]
    return elem(14, body[:name_at] + elem(1, name) + rest)


def test_a_well_formed_file_passes_and_loads_the_same() -> None:
    out = checked_mat_bytes(GOOD, "good.mat")
    assert out == GOOD  # nothing compressed: unchanged
    m = scipy.io.loadmat(io.BytesIO(out), squeeze_me=True)["model"]
    np.testing.assert_array_equal(m["a"].item(), [0, 1, 2])
    assert m["b"].item() == "xy"


def test_compressed_variables_are_inflated_for_scipy() -> None:
    var = _with_name(double((2, 2), [1, 2, 3, 4]), b"w")
    z = zlib.compress(var)
    packed = mat(struct.pack("<II", 15, len(z)) + z, double((1, 1), [7], b"v"))  # no padding
    out = checked_mat_bytes(packed, "z.mat")
    assert out == mat(var, double((1, 1), [7], b"v"))
    got = scipy.io.loadmat(io.BytesIO(out))
    np.testing.assert_array_equal(got["w"], [[1, 3], [2, 4]])


def test_scipy_savemat_files_pass(tmp_path: Path) -> None:
    data = {"model": {"x": np.arange(6.0).reshape(2, 3), "s": "text", "flag": True,
                      "cells": np.array([np.ones(2), "y"], dtype=object),
                      "i": np.int32(3), "c": 1 + 2j}}
    for compress in (False, True):
        buf = io.BytesIO()
        scipy.io.savemat(buf, data, do_compression=compress)
        out = checked_mat_bytes(buf.getvalue(), "saved.mat")
        back = scipy.io.loadmat(io.BytesIO(out), squeeze_me=True)["model"]
        np.testing.assert_array_equal(back["x"].item(), data["model"]["x"])


# The 504-byte fuzz input that segfaults scipy 1.17.1 is GOOD with an empty 8-byte tag
# (type 0) inserted before field a's data: read_numeric looks up a dtype for type 0,
# a NULL pointer. The cases with data types 0, 14 and 100 (numbers) and 8 (text) each
# segfault scipy 1.17.1's loadmat. Each case below: (name, file, message).
_A = double((1, 3), [0, 1, 2])
_A_TYPE0 = _A[:48] + elem(0, b"") + _A[48:]  # after the tag, flags, dims, name
CASES = [
    ("not a mat file", b"not a mat file at all", "no MAT v5 header"),
    ("v4-like zero start", b"\0" * 200, "no MAT v5 header"),
    ("bad endian", GOOD[:126] + b"XX" + GOOD[128:], "endian indicator b'XX'"),
    ("v7.3", GOOD[:124] + b"\x00\x02IM" + GOOD[128:], "version field 0x0200"),
    ("segfault input: type 0 data",
     mat(struct_of({b"a": _A_TYPE0[:4] + struct.pack("<I", len(_A_TYPE0) - 16)
                    + _A_TYPE0[8:]})),
     "real part of a [1, 3] array has data type 0"),
    ("matrix tag where numbers go", mat(matrix(6, (1, 1), elem(14, b"\0" * 8))),
     "has data type 14"),
    ("type 100 data", mat(double((1, 1), [1.0], kind=100)), "has data type 100"),
    ("unknown text type", mat(matrix(4, (1, 2), elem(8, b"xy"))), "text has data type 8"),
    ("element past its parent", mat(matrix(6, (1, 1), elem(9, b"\0" * 8, size=4096))),
     "claims 4096 bytes, 8 left in its parent"),
    ("variable past the file", GOOD[:-8], "claims"),
    ("data shorter than dims", mat(double((2, 3), [1.0, 2.0])),
     "16 bytes of type 9, expected 6 values"),
    ("dims of 3 bytes", mat(elem(14, elem(6, b"\6\0\0\0\0\0\0\0") + elem(5, b"\1\0\0")
                                 + elem(1, b"") + elem(9, b"\0" * 8))),
     "dimensions take 3 bytes"),
    ("negative dims", mat(double((1, -1), [])), "negative dimension"),
    ("flags not uint32", mat(elem(14, elem(5, b"\6\0\0\0\0\0\0\0") + elem(5, b"\1\0\0\0\1\0"
                                      b"\0\0") + elem(1, b"") + elem(9, b"\0" * 8))),
     "array flags are type 5"),
    ("bytes left over", mat(elem(14, double((1, 1), [1.0])[8:] + b"\0" * 8)),
     "8 bytes left over"),
    ("small element over 4 bytes", mat(matrix(6, (1, 1), struct.pack("<HH", 9, 8) + b"\0" * 12)),
     "small data element claims 8 bytes"),
    ("field name length 0", mat(matrix(2, (1, 1), small(5, b"\0\0\0\0") + elem(1, b""))),
     "field name length 0"),
    ("field names not whole", mat(matrix(2, (1, 1), small(5, struct.pack("<i", 4))
                                         + elem(1, b"abcdef"))),
     "not a multiple of 4"),
    ("field name without NUL", mat(struct_of({b"abcd": double((1, 1), [1])}, width=4)),
     "field name 1 is not NUL-terminated"),
    ("more cells than bytes", mat(matrix(1, (1000, 1000), elem(14, b""))),
     "1000000 nested arrays cannot fit"),
    ("cell holding a number", mat(matrix(1, (1, 1), elem(9, b"\0" * 8))),
     "nested element has type 9"),
    ("too deep", mat(_deep(40)), "nested deeper than 32"),
    ("sparse class", mat(matrix(5, (2, 2), b"")), "array class 5 (sparse)"),
    ("opaque class", mat(matrix(17, (1, 1), b"")), "array class 17 (opaque)"),
    ("top-level number", mat(elem(9, b"\0" * 8)), "variable has type 9"),
    ("compressed garbage", mat(elem(15, b"not zlib")), "does not inflate"),
    ("compressed truncated", mat(elem(15, zlib.compress(double((1, 1), [1.0]))[:-6])),
     "truncated"),
    ("compressed non-matrix", mat(elem(15, zlib.compress(elem(9, b"\0" * 8)))),
     "compressed variable holds type 9"),
]


@pytest.mark.parametrize(("name", "data", "message"), CASES, ids=[c[0] for c in CASES])
def test_inconsistent_files_are_refused(name: str, data: bytes, message: str) -> None:
    with pytest.raises(ModelError) as info:
        checked_mat_bytes(data, "bad.mat")
    text = str(info.value)
    assert text.startswith("bad.mat: not a MATLAB .mat file") and "\n" not in text
    assert message in text


def test_the_inflated_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcheck, "MAX_UNCOMPRESSED", 1 << 16)
    bomb = mat(elem(15, zlib.compress(double((1, 1 << 14), [0.0] * (1 << 14)))))
    with pytest.raises(ModelError, match="inflate past 65536 bytes"):
        checked_mat_bytes(bomb, "bomb.mat")


def test_every_voc_release5_model_passes(shared: Path) -> None:
    files = sorted((shared / "models/dpm/voc-release5").glob("*.mat"))
    assert len(files) >= 20
    for path in files:
        out = checked_mat_bytes(path.read_bytes(), str(path))
        assert out[:128] == path.read_bytes()[:128]
    mine = scipy.io.loadmat(io.BytesIO(out), squeeze_me=True, struct_as_record=False)
    theirs = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    np.testing.assert_array_equal(mine["model"].blocks[0].w, theirs["model"].blocks[0].w)
