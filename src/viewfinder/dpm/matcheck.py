"""A pure-Python check of a MATLAB v5 ``.mat`` file's element structure, before scipy.

``scipy.io.loadmat`` (its Cython reader, ``_mio5_utils``) trusts the file: a numeric or
char data element whose type code has no NumPy dtype (0, 8, 10, 11, 14, 15, 19 and up)
makes ``VarReader5.read_numeric`` dereference a NULL (or out-of-table) dtype pointer and
the process dies with SIGSEGV, which no ``except`` can catch; nesting deep enough
overflows the C stack the same way. :func:`checked_mat_bytes` walks every element the way
scipy's reader will, and refuses with one-line :class:`~viewfinder.errors.ModelError`:

* a header that is not MAT v5 (128 bytes, version 1, endian indicator ``IM``/``MI``);
* a data element whose declared size runs past its parent (or the file), or whose type
  is not one scipy can read at that place;
* matrix headers that are not (array flags, dimensions, name), dimensions whose count
  or byte length disagree, or data whose length is not what the dimensions say;
* struct field names that are not whole, NUL-terminated slots;
* an array class a DPM model does not use (sparse, objects, functions, opaque);
* nesting deeper than :data:`MAX_DEPTH`, or compressed data larger than
  :data:`MAX_UNCOMPRESSED` bytes once inflated.

It returns the file with every ``miCOMPRESSED`` variable inflated, so scipy parses
exactly the bytes that were checked (and inflates nothing twice).
"""

from __future__ import annotations

import math
import struct
import zlib

from viewfinder.errors import ModelError

__all__ = ["MAX_DEPTH", "MAX_UNCOMPRESSED", "checked_mat_bytes"]

#: Deepest miMATRIX nesting accepted (voc-release5 models nest 4 deep).
MAX_DEPTH = 32
#: Largest inflated size of all compressed variables together (voc-release5: ~2 MB).
MAX_UNCOMPRESSED = 1 << 28

MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED, MI_UTF8 = 1, 5, 6, 14, 15, 16
#: Data types scipy has a dtype for (``mio5_params.MDTYPES``), with their item sizes.
ITEM_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8,
              16: 1, 17: 2, 18: 4}
_NUMERIC_TYPES = (1, 2, 3, 4, 5, 6, 7, 9, 12, 13)
#: Text data types and their bytes per character (least, most): int8/uint8/uint16 codes,
#: then UTF-8, UTF-16, UTF-32.
_CHAR_BYTES = {1: (1, 1), 2: (1, 1), 4: (2, 2), 16: (1, 4), 17: (2, 4), 18: (4, 4)}
_CHAR_TYPES = tuple(_CHAR_BYTES)
_CELL, _STRUCT, _CHAR = 1, 2, 4
_NUMERIC_CLASSES = range(6, 16)  # mxDOUBLE_CLASS .. mxUINT64_CLASS
_CLASS_NAMES = {3: "object", 5: "sparse", 16: "function", 17: "opaque"}
_MAX_NAME_LENGTH = 64


class _Reader:
    """Element-level reading of one byte buffer (the file, or one inflated variable)."""

    def __init__(self, data: bytes | memoryview, order: str, where: str) -> None:
        self.data, self.where = memoryview(data), where
        self.u4 = struct.Struct(order + "II")
        self.head = struct.Struct(order + "IIIIIIiiII")
        self.order = order

    def fail(self, at: int, problem: str) -> ModelError:
        return ModelError(f"{self.where}: not a MATLAB .mat file the loader can read safely: "
                          f"{problem} (byte {at})")

    def tag(self, pos: int, end: int) -> tuple[int, int, int, int]:
        """``(type, size, data_start, next_pos)`` of the element at ``pos``; small data
        elements (size in the type's upper half) hold up to 4 bytes in the tag."""
        if pos + 8 > end:
            raise self.fail(pos, f"element tag needs 8 bytes, {end - pos} left")
        first, second = self.u4.unpack_from(self.data, pos)
        if first >> 16:
            kind, size = first & 0xFFFF, first >> 16
            if size > 4:
                raise self.fail(pos, f"small data element claims {size} bytes (at most 4)")
            return kind, size, pos + 4, pos + 8
        data_end = pos + 8 + second
        if data_end > end:
            raise self.fail(pos, f"element of type {first} claims {second} bytes, "
                                 f"{end - pos - 8} left in its parent")
        nxt = data_end + (-second % 8)
        return first, second, pos + 8, nxt if nxt < end else end

    def data_element(self, pos: int, end: int, allowed: tuple[int, ...], what: str
                     ) -> tuple[int, int, int, int]:
        kind, size, start, nxt = self.tag(pos, end)
        if kind not in allowed:
            raise self.fail(pos, f"{what} has data type {kind}, expected one of "
                                 f"{', '.join(map(str, allowed))}")
        return kind, size, start, nxt

    def ints(self, start: int, size: int) -> tuple[int, ...]:
        return struct.unpack_from(f"{self.order}{size // 4}i", self.data, start)


def _header(r: _Reader, pos: int, end: int) -> tuple[int, int, tuple[int, ...], int]:
    """``(flags, class, dims, next)`` of a matrix: array flags, dimensions, name."""
    if pos + 40 <= end:  # the usual layout: full tags, 2 dimensions, then the name's tag
        ftype, fsize, flags, _, dtype, dsize, d0, d1, ntype, nsize = r.head.unpack_from(
            r.data, pos)
        if (ftype, fsize, dtype, dsize) == (MI_UINT32, 8, MI_INT32, 8) and d0 >= 0 \
                and d1 >= 0 and ntype in (MI_INT8, MI_UTF8) and pos + 40 + nsize <= end:
            return flags, flags & 0xFF, (d0, d1), min(end, pos + 40 + nsize + (-nsize % 8))
    kind, size, start, nxt = r.tag(pos, end)
    if (kind, size) != (MI_UINT32, 8):
        raise r.fail(pos, f"array flags are type {kind} with {size} bytes, expected "
                          f"{MI_UINT32} with 8")
    flags = r.u4.unpack_from(r.data, start)[0]
    _, size, start, dims_pos = r.data_element(nxt, end, (MI_INT32, MI_UINT32), "dimensions")
    if size % 4 or not 4 <= size <= 128:
        raise r.fail(nxt, f"dimensions take {size} bytes, expected 4 to 128 in steps of 4")
    dims = r.ints(start, size)
    if min(dims) < 0:
        raise r.fail(nxt, f"negative dimension in {list(dims)}")
    _, _, _, after = r.data_element(dims_pos, end, (MI_INT8, MI_UTF8), "array name")
    return flags, flags & 0xFF, dims, min(after, end)


def _matrix(r: _Reader, pos: int, end: int, depth: int) -> None:
    """Check one matrix's content, ``[pos, end)`` (what follows its miMATRIX tag)."""
    if depth > MAX_DEPTH:
        raise r.fail(pos, f"arrays nested deeper than {MAX_DEPTH}")
    flags, mclass, dims, pos = _header(r, pos, end)
    count = math.prod(dims)
    if mclass in _NUMERIC_CLASSES:
        pos = _numeric(r, pos, end, count, dims, "real")
        if flags & 0x800:
            pos = _numeric(r, pos, end, count, dims, "imaginary")
    elif mclass == _CHAR:
        pos = _chars(r, pos, end, count, dims)
    elif mclass in (_CELL, _STRUCT):
        if mclass == _STRUCT:
            names, pos = _field_names(r, pos, end)
            count *= names
        if count * 8 > end - pos:
            raise r.fail(pos, f"{count} nested arrays cannot fit in {end - pos} bytes")
        for _ in range(count):
            pos = _nested(r, pos, end, depth + 1)
    else:
        what = _CLASS_NAMES.get(mclass, "unknown")
        raise r.fail(pos, f"array class {mclass} ({what}) is not used by DPM models")
    if pos != end:
        raise r.fail(pos, f"{end - pos} bytes left over in an array of class {mclass}")


def _numeric(r: _Reader, pos: int, end: int, count: int, dims: tuple[int, ...],
             part: str) -> int:
    kind, size, _, nxt = r.tag(pos, end)
    if kind not in _NUMERIC_TYPES or size != count * ITEM_SIZES[kind]:
        what = f"{part} part of a {list(dims)} array"
        r.data_element(pos, end, _NUMERIC_TYPES, what)  # raises for the type
        raise r.fail(pos, f"{what}: {size} bytes of type {kind}, expected {count} values "
                          f"of {ITEM_SIZES[kind]} bytes")
    return nxt


def _chars(r: _Reader, pos: int, end: int, count: int, dims: tuple[int, ...]) -> int:
    kind, size, _, nxt = r.data_element(pos, end, _CHAR_TYPES, f"{list(dims)} text")
    low, high = _CHAR_BYTES[kind]
    if size and not (size % ITEM_SIZES[kind] == 0 and low * count <= size <= high * count):
        raise r.fail(pos, f"{list(dims)} text: {size} bytes of type {kind} for {count} "
                          "characters")
    return nxt


def _field_names(r: _Reader, pos: int, end: int) -> tuple[int, int]:
    _, size, start, pos2 = r.data_element(pos, end, (MI_INT32, MI_UINT32), "field name length")
    if size != 4:
        raise r.fail(pos, f"field name length takes {size} bytes, expected 4")
    length = r.ints(start, 4)[0]
    if not 1 <= length <= _MAX_NAME_LENGTH:
        raise r.fail(pos, f"field name length {length}, expected 1 to {_MAX_NAME_LENGTH}")
    _, size, start, nxt = r.data_element(pos2, end, (MI_INT8, MI_UTF8), "field names")
    if size % length:
        raise r.fail(pos2, f"field names take {size} bytes, not a multiple of {length}")
    names = bytes(r.data[start:start + size])
    for k in range(0, size, length):
        if 0 not in names[k:k + length]:
            raise r.fail(pos2, f"field name {k // length + 1} is not NUL-terminated")
    return size // length, nxt


def _nested(r: _Reader, pos: int, end: int, depth: int) -> int:
    """A cell's or struct field's miMATRIX element (size 0: an empty array)."""
    kind, size, start, nxt = r.tag(pos, end)
    if kind != MI_MATRIX or start != pos + 8:
        raise r.fail(pos, f"nested element has type {kind}, expected {MI_MATRIX} (matrix)")
    if size:
        _matrix(r, start, start + size, depth)
    return nxt


def _inflate(r: _Reader, start: int, size: int, budget: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(r.data[start:start + size], budget + 1)
    except zlib.error as exc:
        raise r.fail(start, f"compressed variable does not inflate ({exc})") from None
    if len(out) > budget:
        raise r.fail(start, f"compressed variables inflate past {MAX_UNCOMPRESSED} bytes")
    if not inflater.eof:
        raise r.fail(start, "compressed variable is truncated")
    return out


def _file_header(data: bytes, where: str) -> str:
    if len(data) < 128 or 0 in data[:4]:
        raise ModelError(f"{where}: not a MATLAB .mat file (no MAT v5 header)")
    order = {b"IM": "<", b"MI": ">"}.get(data[126:128])
    if order is None:
        raise ModelError(f"{where}: not a MATLAB .mat file (endian indicator "
                         f"{data[126:128]!r}, expected b'IM' or b'MI')")
    version = struct.unpack_from(order + "H", data, 124)[0]
    if version != 0x0100:
        raise ModelError(f"{where}: not a MATLAB .mat file version 5 (version field "
                         f"0x{version:04x}; v7.3 HDF5 files are not supported)")
    return order


def checked_mat_bytes(data: bytes, where: str) -> bytes:
    """Check a MAT v5 file's every element; return it with compressed variables inflated.

    Args:
        data: The whole file.
        where: What to call it in error messages (its path).

    Returns:
        The same variables, uncompressed, for ``scipy.io.loadmat(io.BytesIO(...))``.

    Raises:
        ModelError: one line naming ``where``, the problem and its byte offset.
    """
    order = _file_header(data, where)
    r = _Reader(data, order, where)
    out, pos, budget = [bytes(data[:128])], 128, MAX_UNCOMPRESSED
    while pos < len(data):
        kind, size, start, _ = r.tag(pos, len(data))
        if start != pos + 8 or not size or kind not in (MI_MATRIX, MI_COMPRESSED):
            raise r.fail(pos, f"variable has type {kind} with {size} bytes, expected a "
                              f"matrix ({MI_MATRIX}) or compressed data ({MI_COMPRESSED})")
        if kind == MI_COMPRESSED:
            inner = _inflate(r, start, size, budget)
            budget -= len(inner)
            sub = _Reader(inner, order, f"{where}: variable compressed at byte {pos}")
            kind2, size2, start2, _ = sub.tag(0, len(inner))
            if kind2 != MI_MATRIX or start2 != 8 or 8 + size2 != len(inner):
                raise r.fail(pos, f"compressed variable holds type {kind2} with {size2} "
                                  f"bytes in {len(inner)}, expected one whole matrix")
            _matrix(sub, 8, len(inner), 1)
            out.append(inner)
        else:
            _matrix(r, start, start + size, 1)
            out.append(bytes(data[pos:start + size]))
        pos = start + size
    return b"".join(out)
