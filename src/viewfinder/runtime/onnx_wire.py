"""What loading a model needs from an ONNX file, read without the ``onnx`` package.

``import onnx`` costs about 1 s of CPU on the 2-core host (it loads protobuf and
ml_dtypes), more than the whole face pipeline on one photo. Opening a session needs
only a few fields of the file: the operator types and initializer element types (the
precision the model is stored in, :func:`viewfinder.runtime.ort.graph_precision`) and
the graph inputs' names and dimensions (the ``backend="auto"`` trial shape). This module
reads them straight from the protobuf wire format, skipping the weights without copying
them (a few milliseconds for a 5 MB model).

Fields read (``onnx.proto``): ``ModelProto.graph`` (7); ``GraphProto.node`` (1),
``initializer`` (5), ``input`` (11); ``NodeProto.op_type`` (4); ``TensorProto.data_type``
(2), ``name`` (8); ``ValueInfoProto.name`` (1), ``type`` (2); ``TypeProto.tensor_type``
(1); ``TypeProto.Tensor.shape`` (2); ``TensorShapeProto.dim`` (1);
``Dimension.dim_value`` (1), ``dim_param`` (2). As protobuf does, a repeated ``graph``
field is merged (its lists concatenated) and the last value of a scalar wins.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FLOAT", "FLOAT16", "DecodeError", "OnnxSummary", "read_summary"]

#: ``TensorProto.DataType`` values used here.
FLOAT = 1
FLOAT16 = 10

Dim = int | str | None


class DecodeError(ValueError):
    """The bytes are not a well-formed protobuf message (named as protobuf's own error)."""


@dataclass(frozen=True)
class OnnxSummary:
    """The parts of an ONNX model that loading it needs.

    Attributes:
        op_types: Operator type of each node of the main graph, in order.
        initializer_types: ``TensorProto.DataType`` of each initializer.
        initializer_names: Names of the initializers.
        inputs: ``(name, dims)`` of each graph input that is not an initializer; a dim
            is its ``dim_value`` (int), its ``dim_param`` (str) or None (neither).
    """

    op_types: tuple[str, ...]
    initializer_types: tuple[int, ...]
    initializer_names: frozenset[str]
    inputs: tuple[tuple[str, tuple[Dim, ...]], ...]


def _varint(buf: mmap.mmap | bytes, i: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= end:
            raise DecodeError("truncated varint")
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def _skip_group(buf: mmap.mmap | bytes, i: int, end: int, field: int) -> int:
    """Skip a (deprecated) group up to its end tag."""
    while True:
        key, i = _varint(buf, i, end)
        if key & 7 == 4:
            if key >> 3 != field:
                raise DecodeError("mismatched end-group tag")
            return i
        i = _skip(buf, i, end, key)


def _skip(buf: mmap.mmap | bytes, i: int, end: int, key: int) -> int:
    wire = key & 7
    if wire == 0:
        return _varint(buf, i, end)[1]
    if wire == 1:
        i += 8
    elif wire == 2:
        n, i = _varint(buf, i, end)
        i += n
    elif wire == 5:
        i += 4
    elif wire == 3:
        return _skip_group(buf, i, end, key >> 3)
    else:
        raise DecodeError(f"invalid wire type {wire}")
    if i > end:
        raise DecodeError("truncated field")
    return i


def _fields(buf: mmap.mmap | bytes, i: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(field, wire type, value or start, end)`` of each field in ``buf[i:end]``: for
    wire type 0 the varint value (and its end), for 2 the payload's start and end."""
    while i < end:
        key, i = _varint(buf, i, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise DecodeError("field number 0")
        if wire == 0:
            value, i = _varint(buf, i, end)
            yield field, 0, value, i
        elif wire == 2:
            n, i = _varint(buf, i, end)
            if i + n > end:
                raise DecodeError("truncated length-delimited field")
            yield field, 2, i, i + n
            i += n
        else:
            i = _skip(buf, i, end, key)


def _string(buf: mmap.mmap | bytes, start: int, end: int) -> str:
    return bytes(buf[start:end]).decode("utf-8", errors="replace")


def _last(buf: mmap.mmap | bytes, start: int, end: int, field: int, wire: int
          ) -> tuple[int, int] | None:
    """The last occurrence of ``field`` (with this wire type) in a message."""
    found = None
    for f, w, a, b in _fields(buf, start, end):
        if f == field and w == wire:
            found = (a, b)
    return found


def _dims(buf: mmap.mmap | bytes, start: int, end: int) -> tuple[Dim, ...]:
    """Dimensions of a ``ValueInfoProto``'s tensor type (empty when it has no shape)."""
    dims: list[Dim] = []
    tensor = (t := _last(buf, start, end, 2, 2)) and _last(buf, *t, 1, 2)
    shape = tensor and _last(buf, *tensor, 2, 2)
    if not shape:
        return ()
    for f, w, a, b in _fields(buf, *shape):
        if f != 1 or w != 2:
            continue
        dim: Dim = None
        for df, dw, da, db in _fields(buf, a, b):
            if df == 1 and dw == 0:
                dim = da - (1 << 64) if da >= 1 << 63 else da
            elif df == 2 and dw == 2:
                dim = _string(buf, da, db)
        dims.append(dim)
    return tuple(dims)


def _summarise(buf: mmap.mmap | bytes) -> OnnxSummary:
    ops: list[str] = []
    types: list[int] = []
    names: set[str] = set()
    inputs: list[tuple[str, tuple[Dim, ...]]] = []
    for field, wire, start, end in _fields(buf, 0, len(buf)):
        if field != 7 or wire != 2:
            continue
        for f, w, a, b in _fields(buf, start, end):
            if w != 2:
                continue
            if f == 1:
                op = _last(buf, a, b, 4, 2)
                ops.append(_string(buf, *op) if op else "")
            elif f == 5:
                dtype, name = 0, ""
                for tf, tw, ta, tb in _fields(buf, a, b):
                    if tf == 2 and tw == 0:
                        dtype = ta
                    elif tf == 8 and tw == 2:
                        name = _string(buf, ta, tb)
                types.append(dtype)
                names.add(name)
            elif f == 11:
                name_at = _last(buf, a, b, 1, 2)
                inputs.append((_string(buf, *name_at) if name_at else "", _dims(buf, a, b)))
    return OnnxSummary(tuple(ops), tuple(types), frozenset(names),
                       tuple(i for i in inputs if i[0] not in names))


def read_summary(path: str | os.PathLike[str]) -> OnnxSummary:
    """Read an ONNX file's operator types, initializer types and inputs.

    External data is not read (as ``onnx.load(..., load_external_data=False)``).

    Raises:
        OSError: the file cannot be read.
        DecodeError: the file is not a well-formed protobuf message.
    """
    with open(Path(path), "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return _summarise(b"")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _summarise(buf)
