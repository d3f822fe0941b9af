"""Loading a model on a backend: the one entry point task packages use."""

from __future__ import annotations

from pathlib import Path

from viewfinder.errors import ConfigError
from viewfinder.runtime.base import Session

__all__ = ["load_session"]


def load_session(
    path: str | Path,
    backend: str = "ort",
    provider: str = "cpu",
    threads: int = 0,
) -> Session:
    """Load a model file on a backend.

    Args:
        path: The model file (``.onnx``).
        backend: ``"ort"`` (ONNX Runtime). More backends arrive with the runtime work.
        provider: Execution provider short name (see :data:`viewfinder.runtime.ort.PROVIDERS`).
        threads: Intra-op threads; 0 lets the runtime choose.

    Returns:
        A loaded :class:`~viewfinder.runtime.base.Session`.
    """
    if backend == "ort":
        from viewfinder.runtime.ort import OrtSession

        return OrtSession(path, provider=provider, intra_threads=threads)
    raise ConfigError(f"backend {backend!r}: expected one of ort")
