"""Loading a model on a backend: the one entry point task packages use."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

from viewfinder.errors import ConfigError
from viewfinder.runtime.base import Session

__all__ = ["BACKENDS", "available_backends", "load_session"]

#: Backends ``load_session`` accepts (``auto`` measures and picks one of the others).
BACKENDS = ("ort", "openvino", "auto")


def available_backends() -> list[str]:
    """Backends installed in this environment, in preference order.

    Found without importing them (``import openvino`` is 0.3 s, paid only when it runs);
    a backend that is installed but broken fails when loaded, with its own message.
    """
    from viewfinder.runtime.auto import installed_versions

    return ["ort"] + (["openvino"] if installed_versions()["openvino"] != "none" else [])


def _load_ort(path: str | Path, provider: str, threads: int, precision: str, spin: bool,
              device: str) -> Session:
    from viewfinder.runtime.ort import OrtSession

    return OrtSession(path, provider=provider, intra_threads=threads, precision=precision,
                      spin=spin)


def _load_ov(path: str | Path, threads: int, precision: str, device: str) -> Session:
    from viewfinder.runtime.ov import OvSession

    return OvSession(path, device=device, precision=precision, threads=threads)


def _model_path(path: str | Path) -> str | Path:
    """A zoo name (``"2d106det"``) resolves to its file; anything else is a path."""
    if Path(path).exists() or Path(path).suffix:
        return path
    from viewfinder.runtime.zoo import resolve_model

    return resolve_model(str(path), identify=False)[0]


def load_session(
    path: str | Path,
    backend: str = "ort",
    provider: str = "cpu",
    threads: int = 0,
    precision: str = "f32",
    device: str = "cpu",
    warmup: int = 0,
    shapes: Mapping[str, Sequence[int]] | None = None,
    spin: bool = False,
) -> Session:
    """Load a model file on a backend.

    Args:
        path: The model file (``.onnx``; OpenVINO also reads ``.xml``) or a zoo name.
        backend: ``"ort"`` (ONNX Runtime), ``"openvino"`` (the ``openvino`` extra) or
            ``"auto"``: the faster of the installed ones for this model, measured on
            first use and cached on disk (see :mod:`viewfinder.runtime.auto`); the
            session's ``choice_reason`` says what was picked and why.
        provider: ONNX Runtime execution provider short name
            (see :data:`viewfinder.runtime.ort.PROVIDERS`); a missing one is an error.
        threads: Intra-op threads; 0 = the process-wide budget
            (:func:`viewfinder.runtime.threads.thread_budget`).
        precision: ``"f32"`` (default on every backend), ``"bf16"``, ``"fp16"`` or
            ``"int8"``; never substituted silently.
        device: OpenVINO device (``cpu``, ``gpu``, ``npu``).
        warmup: Warm-up runs on zeros after loading (dynamic inputs need ``shapes``).
        shapes: Input shapes for warm-up, the ``auto`` trial and OpenVINO's compile.
        spin: Let ONNX Runtime's idle threads spin (see the runtime docs).

    Returns:
        A loaded :class:`~viewfinder.runtime.base.Session`.

    Raises:
        ConfigError: unknown backend or precision.
        MissingDependencyError: the backend's package is not installed (names the extra).
        ProviderError: the provider, device or precision is not available here.
        ModelError: the file is missing or not a model.
    """
    path = _model_path(path)
    ort = functools.partial(_load_ort, path, provider, threads, precision, spin)
    ov = functools.partial(_load_ov, path, threads, precision)
    if backend == "ort":
        session = ort(device)
    elif backend == "openvino":
        session = ov(device)
    elif backend == "auto":
        from viewfinder.runtime.auto import choose_backend

        # a provider is ONNX Runtime's: asked for, it is never traded for another backend
        loaders = {"ort": ort} if provider != "cpu" else {"ort": ort, "openvino": ov}
        session = choose_backend(path, loaders, precision, threads, device, shapes, provider)
    else:
        raise ConfigError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if shapes:
        session.reshape(shapes)
    session.warmup(warmup, shapes)
    return session
