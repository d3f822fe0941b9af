"""Benchmark inputs and outputs, msame style.

Inputs: zeros (or seeded random data) shaped by the model, ``.npy`` files as they
are, ``.bin`` files as raw tensors shaped by the model input, and images through
the model's declared preprocessing (``spec.preprocess()``, see
:mod:`viewfinder.runtime.preprocess`).
Outputs: one file per output tensor per input (``txt``, ``bin`` or ``npy``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from viewfinder.errors import ConfigError, DatasetError, FormatError, InputFileError, SizeError
from viewfinder.fileio import atomic_path, expand_files
from viewfinder.media.sources import IMAGE_SUFFIXES
from viewfinder.runtime.base import Session, TensorInfo, concrete_shape
from viewfinder.runtime.specs import ModelSpec

__all__ = ["IMAGE_SUFFIXES", "Sample", "load_samples", "parse_shapes", "synthetic_samples",
           "write_outputs"]

log = logging.getLogger(__name__)

_DATA_SUFFIXES = (".npy", ".bin") + IMAGE_SUFFIXES
OUTFMTS = ("txt", "bin", "npy")

#: One model call: a name (for output files) and the feeds.
Sample = tuple[str, dict[str, np.ndarray]]


def parse_shapes(texts: Sequence[str], inputs: Sequence[TensorInfo]) -> dict[str, tuple[int, ...]]:
    """Parse ``--shape`` values: ``1,3,640,640`` (single input) or ``name:1,3,640,640``.

    Raises:
        ConfigError: malformed text or an unknown input name.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    names = [i.name for i in inputs]
    for text in texts:
        name, _, dims = text.rpartition(":")
        if not name:
            if len(names) != 1:
                raise ConfigError(f"--shape {text}: model has inputs {', '.join(names)}; "
                                  "write name:dims")
            name = names[0]
        if name not in names:
            raise ConfigError(f"--shape {text}: no input {name!r} (inputs: {', '.join(names)})")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(","))
        except ValueError as exc:
            raise ConfigError(f"--shape {text}: expected comma-separated ints") from exc
        if not shape or min(shape) <= 0:
            raise ConfigError(f"--shape {text}: dims must be positive")
        shapes[name] = shape
    return shapes


def _with_batch(info: TensorInfo, shape: tuple[int, ...] | None, batch: int, model: str
                ) -> tuple[int, ...] | None:
    """Apply ``--batch`` to dim 0 (errors for a fixed batch that differs)."""
    if batch <= 0:
        raise ConfigError(f"--batch {batch}: expected a positive count")
    dims = list(shape) if shape is not None else list(info.shape)
    if not dims:
        return shape
    fixed0 = isinstance(info.shape[0], int) and info.shape[0] >= 0
    if fixed0 and batch != info.shape[0] and batch != 1:
        raise ConfigError(f"{model}: input {info.name!r} has a fixed batch of {info.shape[0]}; "
                          f"--batch {batch} needs a model with a dynamic batch "
                          "(viewfinder convert --batch dynamic)")
    if not fixed0 or batch != 1:
        dims[0] = batch
    if any(not isinstance(d, int) or d < 0 for d in dims):
        return None if shape is None else tuple(dims)  # still dynamic: concrete_shape explains
    return tuple(dims)


def input_shapes(session: Session, shapes: Mapping[str, Sequence[int]], batch: int
                 ) -> dict[str, tuple[int, ...]]:
    """Concrete input shapes from ``--shape``, ``--batch`` and the model's fixed dims.

    Raises:
        ShapeError: dynamic dims and no ``--shape`` (one line asking for it).
    """
    out = {}
    for info in session.inputs:
        given = tuple(shapes[info.name]) if info.name in shapes else None
        shape = _with_batch(info, given, batch, session.path) if given is None else given
        out[info.name] = concrete_shape(info, shape, session.path)
    return out


def synthetic_samples(session: Session, shapes: Mapping[str, Sequence[int]],
                      random: bool = False, seed: int = 0) -> list[Sample]:
    """One sample of zeros (msame's default) or seeded uniform data in [0, 1)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for info in session.inputs:
        shape = tuple(shapes[info.name])
        if random:
            feeds[info.name] = rng.random(shape, dtype=np.float32).astype(info.dtype)
        else:
            feeds[info.name] = np.zeros(shape, dtype=info.dtype)
    return [("zeros" if not random else "random", feeds)]


def _expand(paths: Sequence[str | Path]) -> list[Path]:
    return expand_files(paths, _DATA_SUFFIXES, ".npy, .bin or image files", DatasetError)


def _read_bin(path: Path, info: TensorInfo, shape: tuple[int, ...]) -> np.ndarray:
    want = math.prod(shape) * info.dtype.itemsize
    got = path.stat().st_size
    if got != want:
        dims = "x".join(map(str, shape))
        raise SizeError(f"{path}: {got} bytes, expected {want} "
                        f"({dims} {info.dtype.name} for input {info.name!r})")
    return np.fromfile(path, dtype=info.dtype).reshape(shape)


def _read_npy(path: Path, info: TensorInfo, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise FormatError(f"{path}: not a .npy array ({exc})") from exc
    if arr.shape != shape and arr.shape != shape[1:]:
        raise SizeError(f"{path}: array of shape {arr.shape}, expected {shape} "
                        f"for input {info.name!r}")
    arr = arr.reshape(shape) if arr.shape == shape[1:] else arr
    return arr.astype(info.dtype, copy=False)


def _read_image(path: Path, spec: ModelSpec | None, shape: tuple[int, ...]) -> np.ndarray:
    if spec is None or spec.input is None:
        raise ConfigError(f"{path}: image inputs need a zoo model (its declared "
                          "preprocessing); pass the model by zoo name, or give .npy/.bin")
    from viewfinder.media.image import read_image

    size = (shape[3], shape[2]) if spec.input.layout == "NCHW" else (shape[2], shape[1])
    return spec.preprocess(size)(read_image(path)).tensor


def load_samples(session: Session, spec: ModelSpec | None, paths: Sequence[str | Path],
                 shapes: Mapping[str, Sequence[int]], batch: int = 1) -> list[Sample]:
    """Read input files into model feeds; ``batch`` consecutive files form one call.

    Multi-input models take one file per input, comma-joined (``a.npy,b.npy``).

    Raises:
        InputFileError, SizeError, FormatError, DatasetError, ConfigError: one line each.
    """
    infos = session.inputs
    items: list[list[Path]] = []
    for text in paths:
        parts = str(text).split(",") if len(infos) > 1 else [str(text)]
        if len(parts) != len(infos):
            raise ConfigError(f"--input {text}: model has {len(infos)} inputs, got "
                              f"{len(parts)} files")
        items += [[f] for f in _expand(parts)] if len(infos) == 1 else [_expand(parts)]
    per_item = {i.name: (1,) + tuple(shapes[i.name][1:]) for i in infos}
    singles = [(files[0].stem, {i.name: _read_one(f, i, per_item[i.name], spec)
                                for f, i in zip(files, infos, strict=True)}) for files in items]
    return _batched(singles, batch)


def _read_one(path: Path, info: TensorInfo, shape: tuple[int, ...], spec: ModelSpec | None
              ) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".bin":
        return _read_bin(path, info, shape)
    if suffix == ".npy":
        return _read_npy(path, info, shape)
    if suffix in IMAGE_SUFFIXES:
        return _read_image(path, spec, shape)
    raise FormatError(f"{path}: unknown input kind {suffix!r} (expected .npy, .bin or an image)")


def _batched(singles: list[Sample], batch: int) -> list[Sample]:
    if batch == 1:
        return singles
    out = []
    for start in range(0, len(singles), batch):
        group = singles[start:start + batch]
        if len(group) < batch:
            log.info("last batch padded with %d copies of %s", batch - len(group), group[-1][0])
            group += [group[-1]] * (batch - len(group))
        feeds = {k: np.concatenate([g[1][k] for g in group]) for k in group[0][1]}
        out.append((group[0][0], feeds))
    return out


def write_outputs(outdir: str | Path, name: str, outputs: Sequence[np.ndarray],
                  infos: Sequence[TensorInfo], fmt: str) -> list[Path]:
    """Write one file per output tensor: ``<name>_output_<i>.<fmt>`` (atomically).

    Raises:
        ConfigError: unknown format. InputFileError: the directory does not exist.
    """
    if fmt not in OUTFMTS:
        raise ConfigError(f"--outfmt {fmt}: expected one of {', '.join(OUTFMTS)}")
    root = Path(outdir)
    if not root.is_dir():
        raise InputFileError(f"{root}: output directory does not exist")
    written = []
    for i, (arr, _info) in enumerate(zip(outputs, infos, strict=True)):
        target = root / f"{name}_output_{i}.{fmt}"
        with atomic_path(target) as tmp:
            if fmt == "npy":
                with open(tmp, "wb") as f:
                    np.save(f, arr)
            elif fmt == "bin":
                np.ascontiguousarray(arr).tofile(tmp)
            else:
                flat = arr.reshape(-1, arr.shape[-1]) if arr.ndim > 1 else arr.reshape(1, -1)
                np.savetxt(tmp, flat, fmt="%.7g")
        written.append(target)
    return written
