"""The model zoo: one registry of every model viewfinder uses.

>>> from viewfinder.runtime import zoo
>>> spec = zoo.get_model("scrfd_500m")
>>> path = zoo.resolve("scrfd_500m")          # local dir, cache, or download
>>> path, spec = zoo.resolve_model("VOC2007_person", task="dpm")  # name or path

:func:`resolve_model` is the one "zoo name or path" resolver every command and task
package uses. Its integrity errors (a local copy that fails its checksum) are
:class:`~viewfinder.errors.ModelError` and are never turned into a search elsewhere.

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
    "resolve_model",
    "resolve_model_arg",
    "spec_for_file",
]

_REGISTRY: dict[str, ModelSpec] = {}
_TASK_WORDS = {"dpm": "DPM model", "detection": "detection model",
               "face-detection": "face detection model", "face-landmarks": "landmark model"}


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


def _zoo_name(arg: str, task: str | None) -> str | None:
    """The registered name ``arg`` is: itself or ``<task>/<arg>`` (``VOC2007_person`` with
    task ``dpm`` is ``dpm/VOC2007_person``)."""
    if arg in _REGISTRY:
        return arg
    if task is not None and f"{task}/{arg}" in _REGISTRY:
        return f"{task}/{arg}"
    return None


def _by_file_name(arg: str, task: str | None) -> str | None:
    """The model whose primary file is named ``arg`` (``VOC2007_person_final.mat``)."""
    if os.sep in arg or "/" in arg:
        return None
    found = [s.name for s in _REGISTRY.values()
             if arg in (s.primary.name, Path(s.primary.name).stem)
             and (task is None or s.task == task)]
    return found[0] if len(found) == 1 else None


def _unknown(arg: str, task: str | None) -> ModelNotFoundError:
    names = [s.name for s in list_models(task)] if task else list(_REGISTRY)
    bare = [n.removeprefix(f"{task}/") for n in names] if task else []
    close = difflib.get_close_matches(arg, list(dict.fromkeys(names + bare)), n=4, cutoff=0.5)
    what = _TASK_WORDS.get(task or "", f"{task} model" if task else "model")
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `viewfinder models list`"
    return ModelNotFoundError(f"{what} {arg!r}: no such file and not in the zoo{hint}")


def resolve_model(arg: str | os.PathLike[str], task: str | None = None, *,
                  fetch: bool = True, progress: Progress | None = None,
                  identify: bool = True) -> tuple[Path, ModelSpec | None]:
    """The one "zoo name or path" resolver: a model argument -> (primary file, spec).

    In order: a registered zoo name (also ``<task>/<arg>``) is resolved through
    :func:`resolve` (every file found locally is checksum-verified; missing ones are
    downloaded unless ``fetch`` is False); else an existing file is returned as it is,
    with the spec whose digest it has (None for a model of your own); else a zoo file
    name (``VOC2007_person_final.mat``) is resolved as its model.

    Args:
        arg: Zoo name or file path.
        task: Only models of this task (``face-detection``, ``face-landmarks``,
            ``detection``, ``dpm``): a zoo model of another task is refused.
        fetch: Download zoo files that are not available locally.
        progress: Download progress callback.
        identify: For a file path, find its spec by digest (False: skip the hashing
            and return None; for callers that only need the path).

    Raises:
        ModelError: a local or downloaded copy fails its checksum (never swallowed),
            or a zoo model of another task.
        ModelNotFoundError: neither an existing file nor a zoo name (close names listed),
            or a zoo file that is missing and cannot be fetched.
    """
    _ensure_loaded()
    text = os.fspath(arg)
    if task is not None:
        list_models(task)  # an unknown task is refused with the known ones
    name = _zoo_name(text, task)
    p = Path(text).expanduser()
    if name is None and p.is_file():
        spec = spec_for_file(p) if identify else None
        return p, spec if spec is None or task is None or spec.task == task else None
    name = name or _by_file_name(text, task)
    if name is not None:
        spec = _REGISTRY[name]
        if task is not None and spec.task != task:
            raise ModelError(f"model {name}: a {spec.task} model, expected a {task} model")
        return resolve(name, fetch, progress), spec
    if p.exists():
        raise ModelNotFoundError(f"{p}: not a model file (a directory?)")
    if p.suffix:
        raise ModelNotFoundError(f"{text}: no such model file")
    raise _unknown(text, task)


def resolve_model_arg(arg: str) -> tuple[Path, ModelSpec | None]:
    """Deprecated name of :func:`resolve_model` (kept for callers not yet moved)."""
    return resolve_model(arg)
