"""The model zoo: one registry of every model viewfinder uses.

>>> from viewfinder.runtime import zoo
>>> spec = zoo.get_model("scrfd_500m")
>>> path = zoo.resolve("scrfd_500m")          # local dir, cache, or download

Digests and sizes come from the copies in ``shared/SHA256SUMS`` (the files the
project is tested with); where an upstream copy is known to differ only in
encoding, its digest is accepted too. The manifest entries live in
:mod:`viewfinder.runtime.zoo_manifest`.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from viewfinder.errors import ModelError, ModelNotFoundError
from viewfinder.runtime.fetch import Progress, download, file_sha256, find_local, verify_file
from viewfinder.runtime.specs import FileSpec, ModelSpec

__all__ = [
    "get_model",
    "list_models",
    "register",
    "resolve",
    "resolve_files",
    "resolve_model_arg",
    "spec_for_file",
]

_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a spec to the registry (names are unique)."""
    if spec.name in _REGISTRY:
        raise ModelError(f"model {spec.name}: registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    if not _REGISTRY:
        from viewfinder.runtime import zoo_manifest

        for spec in zoo_manifest.SPECS:
            register(spec)


def list_models(task: str | None = None) -> list[ModelSpec]:
    """All registered specs (optionally of one task), sorted by name.

    Raises:
        ModelNotFoundError: an unknown task (the message lists the known ones).
    """
    _ensure_loaded()
    specs = sorted(_REGISTRY.values(), key=lambda s: s.name)
    tasks = sorted({s.task for s in specs})
    if task is not None and task not in tasks:
        raise ModelNotFoundError(f"task {task!r}: expected one of {', '.join(tasks)}")
    return [s for s in specs if task is None or s.task == task]


def get_model(name: str) -> ModelSpec:
    """The spec registered as ``name``.

    Raises:
        ModelNotFoundError: unknown name; the message lists close names.
    """
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `viewfinder models list`"
    raise ModelNotFoundError(f"model {name!r} is not in the zoo{hint}")


def _resolve_file(fspec: FileSpec, model: str, fetch: bool, progress: Progress | None) -> Path:
    local = find_local(fspec)
    if local is not None:
        verify_file(local, fspec)
        return local
    if not fetch:
        raise ModelNotFoundError(
            f"model {model}: {fspec.relpath} is not available locally "
            f"(fetch it with `viewfinder models fetch {model}`)"
        )
    return download(fspec, model, progress)


def resolve_files(
    name: str, fetch: bool = True, progress: Progress | None = None
) -> dict[str, Path]:
    """Paths of all files of model ``name``, keyed by file name (downloads as needed).

    Raises:
        ModelNotFoundError: unknown name, or a file is missing and cannot be fetched.
        ModelError: a local or downloaded file fails its checksum.
    """
    spec = get_model(name)
    return {f.name: _resolve_file(f, name, fetch, progress) for f in spec.files}


def resolve(name: str, fetch: bool = True, progress: Progress | None = None) -> Path:
    """Path of the primary file of model ``name`` (all its files are resolved).

    Searches each ``VIEWFINDER_MODELS`` directory (the file name directly and in the
    spec's subdirectory), then ``cache_dir()/models``, then downloads it.
    """
    spec = get_model(name)
    return resolve_files(name, fetch, progress)[spec.primary.name]


def spec_for_file(path: str | os.PathLike[str]) -> ModelSpec | None:
    """The spec whose primary file has this file's sha256 (or name, if unverifiable)."""
    _ensure_loaded()
    p = Path(path)
    digest = file_sha256(p)
    for spec in _REGISTRY.values():
        if digest in spec.primary.sha256:
            return spec
    for spec in _REGISTRY.values():
        if not spec.primary.sha256 and spec.primary.name == p.name:
            return spec
    return None


def resolve_model_arg(arg: str) -> tuple[Path, ModelSpec | None]:
    """A CLI model argument: a zoo name or a file path, with its spec when known.

    Raises:
        ModelNotFoundError: neither a zoo name nor an existing file.
    """
    _ensure_loaded()
    if arg in _REGISTRY:
        return resolve(arg), _REGISTRY[arg]
    p = Path(arg)
    if p.is_file():
        return p, spec_for_file(p)
    if p.suffix or os.sep in arg:
        raise ModelNotFoundError(f"{arg}: no such model file")
    get_model(arg)  # raises with close names
    raise AssertionError("unreachable")  # pragma: no cover
