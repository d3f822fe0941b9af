"""Darknet ``.weights`` files: header and per-layer float32 tensors (NumPy, no torch).

Layout (Darknet ``load_weights``): ``int32 major, minor, revision``, then ``seen``
(``uint64`` when ``major * 10 + minor >= 2``, else ``int32``), then for each
convolutional layer in order: biases, and when it has batch norm the BN scales,
rolling means and rolling variances, then the ``filters x (C/groups) x k x k``
weights. Other layers store nothing. A file that is too short fails naming the
layer where it ran out; one that is too long fails naming how much is left over.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewfinder.detect.darknet_cfg import NetSpec, conv_param_counts
from viewfinder.errors import ModelError
from viewfinder.fileio import atomic_path, check_readable

__all__ = ["WeightsHeader", "expected_weights_size", "read_weights", "write_weights"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsHeader:
    """The header of a ``.weights`` file."""

    major: int
    minor: int
    revision: int
    seen: int

    @property
    def seen_is_64bit(self) -> bool:
        """Darknet stores ``seen`` as uint64 from version 0.2 on."""
        return (self.major * 10 + self.minor) >= 2 and self.major < 1000 and self.minor < 1000

    @property
    def nbytes(self) -> int:
        """Header size in bytes (20 or 16)."""
        return 12 + (8 if self.seen_is_64bit else 4)


def _read_header(data: bytes, source: str) -> WeightsHeader:
    if len(data) < 16:
        raise ModelError(f"{source}: {len(data)} bytes, too short for a Darknet weights header")
    major, minor, revision = (int(v) for v in np.frombuffer(data, "<i4", 3))
    probe = WeightsHeader(major, minor, revision, 0)
    if major >= 1000 or minor >= 1000:
        raise ModelError(f"{source}: header version {major}.{minor} (transposed weights) "
                         "is not supported")
    if probe.seen_is_64bit and len(data) < 20:
        raise ModelError(f"{source}: {len(data)} bytes, too short for a Darknet weights header")
    dtype = "<u8" if probe.seen_is_64bit else "<i4"
    seen = int(np.frombuffer(data, dtype, 1, offset=12)[0])
    return WeightsHeader(major, minor, revision, seen)


def expected_weights_size(spec: NetSpec, header_bytes: int = 20) -> int:
    """Bytes a ``.weights`` file for ``spec`` must have (header included)."""
    floats = sum(n for layer in spec.layers if layer.kind == "convolutional"
                 for _, n in conv_param_counts(layer))
    return header_bytes + 4 * floats


def _shortfall(path: Path, spec: NetSpec, header_bytes: int, size: int, expected: int) -> str:
    """The message for a file too short for ``spec``: where its data runs out."""
    left = (size - header_bytes) // 4
    for layer in spec.layers:
        if layer.kind != "convolutional":
            continue
        for name, count in conv_param_counts(layer):
            if count > left:
                return (f"{path}: ran out of data at {layer.where} reading {name} ({count} "
                        f"floats, {left} left); file has {size} bytes, cfg {spec.source} "
                        f"needs {expected}")
            left -= count
    return f"{path}: file has {size} bytes, cfg {spec.source} needs {expected}"


def read_weights(
    path: str | os.PathLike[str], spec: NetSpec, *, strict: bool = True
) -> tuple[WeightsHeader, dict[int, dict[str, np.ndarray]]]:
    """Read a ``.weights`` file against a parsed cfg.

    Args:
        path: The ``.weights`` file.
        spec: The network it belongs to.
        strict: Fail when bytes are left over after the last layer (False logs a warning).

    Returns:
        The header and ``{layer index: {"bias", ["bn_weight", "bn_mean", "bn_var"], "weight"}}``,
        weights shaped ``(filters, C/groups, k, k)``.

    Raises:
        ModelError: the file is too short (naming the layer where it ran out) or too long,
            found from its size before any weight is read (expected and actual bytes in
            the message).
    """
    p = check_readable(path, "Darknet weights file")
    size = p.stat().st_size
    with open(p, "rb") as fh:
        header = _read_header(fh.read(20), str(p))
    expected = expected_weights_size(spec, header.nbytes)
    if size < expected:  # refused from the file size alone, before reading any weight
        raise ModelError(_shortfall(p, spec, header.nbytes, size, expected))
    extra = size - expected
    if extra:
        msg = (f"{p}: {extra} bytes left over after the last convolutional layer; file has "
               f"{size} bytes, cfg {spec.source} needs {expected}")
        if strict:
            raise ModelError(msg)
        log.warning(msg)
    with open(p, "rb") as fh:
        fh.seek(header.nbytes)
        floats = np.frombuffer(fh.read(expected - header.nbytes), "<f4")
    pos, tensors = 0, {}
    for layer in spec.layers:
        if layer.kind != "convolutional":
            continue
        parts = {}
        for name, count in conv_param_counts(layer):
            parts[name] = floats[pos:pos + count].copy()
            pos += count
        filters, ksize = layer.get_int("filters"), layer.get_int("size", 1)
        parts["weight"] = parts["weight"].reshape(filters, -1, ksize, ksize)
        tensors[layer.index] = parts
    return header, tensors


def write_weights(path: str | os.PathLike[str], spec: NetSpec,
                  tensors: dict[int, dict[str, np.ndarray]], seen: int = 0) -> Path:
    """Write a ``.weights`` file (version 0.2.0, 64-bit ``seen``) atomically.

    ``tensors`` has the layout :func:`read_weights` returns.
    """
    chunks = [np.array([0, 2, 0], "<i4").tobytes(), np.array([seen], "<u8").tobytes()]
    for layer in spec.layers:
        if layer.kind != "convolutional":
            continue
        if layer.index not in tensors:
            raise ModelError(f"{path}: no tensors for {layer.where}")
        for name, count in conv_param_counts(layer):
            value = np.asarray(tensors[layer.index][name], "<f4").reshape(-1)
            if value.size != count:
                raise ModelError(f"{path}: {layer.where} {name} has {value.size} values, "
                                 f"expected {count}")
            chunks.append(value.tobytes())
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"".join(chunks))
    return Path(path)
