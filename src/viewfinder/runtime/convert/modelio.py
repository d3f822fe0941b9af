"""Reading, checking, hashing and atomically writing ONNX models."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import onnx

from viewfinder.errors import ModelError
from viewfinder.fileio import check_readable

__all__ = ["graph_input", "initializer_names", "load_model", "opset_version", "save_model",
           "sha256_file"]

_ONNX_DOMAINS = ("", "ai.onnx")


def load_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load and check an ONNX model file.

    Raises:
        InputFileError: the file is missing or unreadable.
        ModelError: the file is not an ONNX model (one line naming the file).
    """
    p = check_readable(path, "model file")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning...
        raise ModelError(f"{p}: not an ONNX model ({_first_line(exc)})") from exc
    if not model.graph.node or not model.graph.input or not model.opset_import:
        raise ModelError(f"{p}: not an ONNX model (no graph, inputs or opset found)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelError(f"{p}: invalid ONNX model ({_first_line(exc)})") from exc
    return model


def save_model(model: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    """Check ``model`` and write it to ``path`` (a temporary file from ``atomic_path``).

    The file gets the usual permissions (0666 less the umask), not mkstemp's 0600.
    """
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelError(f"{path}: the converted model is invalid ({_first_line(exc)})") from exc
    target = Path(path)
    onnx.save(model, str(target))
    os.chmod(target, 0o666 & ~_umask())
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def opset_version(model: onnx.ModelProto) -> int:
    """The default-domain opset the model imports."""
    for op in model.opset_import:
        if op.domain in _ONNX_DOMAINS:
            return int(op.version)
    return 0


def initializer_names(model: onnx.ModelProto) -> set[str]:
    """Names of the graph's initializers (weights), which may also be listed as inputs."""
    return {init.name for init in model.graph.initializer}


def graph_input(model: onnx.ModelProto, name: str | None = None) -> onnx.ValueInfoProto:
    """The real (non-initializer) input called ``name``, or the only one when ``name`` is None.

    Raises:
        ModelError: no such input, or several inputs and no name given.
    """
    inits = initializer_names(model)
    real = [i for i in model.graph.input if i.name not in inits]
    if name is None:
        if len(real) != 1:
            names = ", ".join(i.name for i in real)
            raise ModelError(f"model has {len(real)} inputs ({names}); name the one to convert")
        return real[0]
    for inp in real:
        if inp.name == name:
            return inp
    names = ", ".join(i.name for i in real)
    raise ModelError(f"model input {name!r}: no such input (inputs: {names})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
