"""``backend="auto"``: pick the fastest installed backend per model by measuring.

On first use for a model the candidates (ONNX Runtime, and OpenVINO when installed)
are loaded and timed on zeros of the input shape, interleaved, and the fastest (by its
best run) at the requested precision wins. The choice is cached on disk
(``cache_dir()/runtime/auto-backend.json``) under a key made of the model file's
sha256, the CPU flags, the backend versions, precision, threads, device and the
input shapes: a new model file, another CPU or an upgraded backend re-measures.
Another backend must beat the first (ONNX Runtime, the reference) by 5 % to be
chosen. Delete the cache file to re-measure (e.g. after a trial on a busy host).
The decision is logged as one line and kept as ``session.choice_reason``.

Start-up: a later process finds the decision by its *request* (model sha256 and name, the
settings and the shapes it was given, CPU flags, installed backend versions read from
their package metadata) before loading anything, and then loads only the chosen backend:
no first session to learn the input shapes, no ``import openvino`` when ONNX Runtime won.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.util
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from viewfinder.config import cache_dir
from viewfinder.errors import ConfigError, ViewfinderError
from viewfinder.fileio import atomic_write_text
from viewfinder.runtime.base import Session, concrete_shape
from viewfinder.runtime.fetch import file_sha256
from viewfinder.runtime.threads import cpu_flags, thread_budget

__all__ = ["backend_versions", "cache_key", "choose_backend", "installed_versions", "recall",
           "record", "request_key", "trial_shapes"]

log = logging.getLogger(__name__)

_TRIAL_BUDGET_S = 1.5
#: Another backend must be this much faster than the first (ONNX Runtime) to be chosen:
#: within the noise of a short trial, the reference backend stays.
_MARGIN = 0.05
Loader = Callable[[str], Session]


def backend_versions() -> dict[str, str]:
    """Installed backend versions (``"none"`` for a backend that is not installed)."""
    import onnxruntime

    from viewfinder.runtime.ov import ov_version

    return {"ort": onnxruntime.__version__, "openvino": ov_version()}


def _installed(module: str) -> str:
    """``module``'s installed version, read from its ``<module>-<version>.dist-info``
    folder without importing it (``import openvino`` alone is 0.3 s); imported when no
    such folder is found; ``"none"`` when it is not installed."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return "none"
    if spec is None:
        return "none"
    roots = list(spec.submodule_search_locations or []) or [spec.origin or ""]
    for root in roots:
        for meta in Path(root).parent.glob(f"{module}-*.dist-info"):
            return meta.name[len(module) + 1:-len(".dist-info")]
    try:
        return str(getattr(importlib.import_module(module), "__version__", "?"))
    except ImportError:
        return "none"


def installed_versions() -> dict[str, str]:
    """Backend versions for the cache keys, from the installed packages' metadata
    (``"none"`` for a backend that is not installed); nothing is imported."""
    return {"ort": _installed("onnxruntime"), "openvino": _installed("openvino")}


def cache_file() -> Path:
    """Where auto-selection decisions are stored."""
    return cache_dir() / "runtime" / "auto-backend.json"


def cache_key(path: str | Path, precision: str, threads: int, device: str,
              shapes: Mapping[str, Sequence[int]], provider: str = "cpu") -> str:
    """The cache key: model sha256, CPU flags, backend versions and run settings."""
    parts = {
        "model": file_sha256(path), "flags": list(cpu_flags()), "versions": installed_versions(),
        "precision": precision, "threads": threads, "device": device, "provider": provider,
        "shapes": {k: list(v) for k, v in sorted(shapes.items())},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def request_key(path: str | Path, loaders: Sequence[str], precision: str, threads: int,
                device: str, shapes: Mapping[str, Sequence[int]] | None,
                provider: str = "cpu") -> str:
    """What a decision is found by before any backend is loaded: the model's sha256 and
    file name (the zoo spec that sets a default trial size is found by either), the
    candidate backends, CPU flags, backend versions, settings and the shapes as given."""
    parts = {
        "model": file_sha256(path), "name": Path(path).name, "loaders": list(loaders),
        "flags": list(cpu_flags()), "versions": installed_versions(), "precision": precision,
        "threads": threads, "device": device, "provider": provider,
        "shapes": None if shapes is None else {k: list(v) for k, v in sorted(shapes.items())},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def trial_shapes(session: Session, shapes: Mapping[str, Sequence[int]] | None
                 ) -> dict[str, tuple[int, ...]]:
    """Input shapes for the trial: given ones, fixed dims, or the zoo's default size."""
    given = dict(shapes or {})
    out = {}
    for info in session.inputs:
        if info.name in given or not info.is_dynamic:
            out[info.name] = concrete_shape(info, given.get(info.name), session.path)
            continue
        out[info.name] = _default_shape(session.path, info.shape)
    return out


def _default_shape(path: str, dims: Sequence[object]) -> tuple[int, ...]:
    from viewfinder.runtime.zoo import spec_for_file

    spec = spec_for_file(path)
    w, h = spec.input.image_size if spec is not None and spec.input is not None else (640, 640)
    fill = [1, 3, h, w] if len(dims) == 4 else [1] * len(dims)
    return tuple(d if isinstance(d, int) and d >= 0 else f for d, f in zip(dims, fill, strict=True))


def _load_cache() -> dict[str, dict]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict) -> None:
    """Write a cache file; a cache that cannot be written is logged, never an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))
    except OSError as exc:
        log.warning("cannot write the cache file %s (%s): the next run measures again",
                    path, exc)


def _store(key: str, entry: dict, request: str | None = None) -> None:
    """Store (or update) the decision under ``key``, found later also by ``request``."""
    data = _load_cache()
    old = data.get(key)
    requests = list(old.get("requests", [])) if isinstance(old, dict) else []
    if request is not None and request not in requests:
        requests.append(request)
    data[key] = {**entry, "requests": requests[-8:]}
    _write_json(cache_file(), data)


def decisions_file() -> Path:
    """Where other measured start-up decisions are stored (see :func:`recall`)."""
    return cache_dir() / "runtime" / "decisions.json"


def _decision_key(kind: str, parts: Mapping[str, object]) -> str:
    full = {"kind": kind, "parts": parts, "flags": list(cpu_flags()),
            "versions": installed_versions()}
    return hashlib.sha256(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()


def recall(kind: str, parts: Mapping[str, object]) -> dict | None:
    """A decision stored by :func:`record` for ``kind`` and the same ``parts`` on this
    host (CPU flags and backend versions are part of the key), or None.

    For what a process would otherwise measure or derive on every start (e.g. the
    landmark batching trial); ``parts`` must name everything the decision depends on
    (model file sha256, backend, threads...) as JSON-able values.
    """
    try:
        data = json.loads(decisions_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    hit = data.get(_decision_key(kind, parts)) if isinstance(data, dict) else None
    return hit if isinstance(hit, dict) else None


def record(kind: str, parts: Mapping[str, object], entry: dict) -> None:
    """Store ``entry`` (JSON-able) for :func:`recall`; an unwritable cache is logged."""
    try:
        data = json.loads(decisions_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    data[_decision_key(kind, parts)] = {**entry, "kind": kind}
    _write_json(decisions_file(), data)


def _time(sessions: dict[str, Session], feeds: dict[str, np.ndarray]) -> dict[str, float]:
    """Best (least) seconds per run of each session: warm-up, then interleaved rounds.

    The minimum, not the median: on a shared host the median carries whatever else ran
    during the trial (a trial under load once cached a 20 % "win" for a backend that
    ties on a quiet host); the least-disturbed run is what the backend can do."""
    first = {}
    for name, sess in sessions.items():
        sess.run(feeds)  # compile / allocate
        t0 = time.perf_counter()
        sess.run(feeds)
        first[name] = time.perf_counter() - t0
    rounds = int(min(15, max(3, _TRIAL_BUDGET_S / max(sum(first.values()), 1e-4))))
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, sess in sessions.items():
            t0 = time.perf_counter()
            sess.run(feeds)
            times[name].append(time.perf_counter() - t0)
    return {name: min(v) for name, v in times.items()}


def _describe(chosen: str, times: dict[str, float], shapes: Mapping[str, Sequence[int]],
              precision: str, threads: int, skipped: dict[str, str]) -> str:
    others = ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in times.items() if k != chosen)
    shape = ";".join("x".join(map(str, s)) for s in shapes.values())
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    line = (f"auto: {chosen} {times[chosen] * 1e3:.2f} ms" + (f" vs {others}" if others else "")
            + f" (best of the trial, {shape}, {precision}, {threads} threads, {when})")
    for name, why in skipped.items():
        line += f"; {name} skipped: {why}"
    return line


def _load_all(loaders: Mapping[str, Loader], device: str, sessions: dict[str, Session],
              skipped: dict[str, str], only: str | None = None) -> None:
    """Load every backend (or ``only``) not loaded or skipped yet; errors become skips."""
    for name, load in loaders.items():
        if name in sessions or name in skipped or (only is not None and name != only):
            continue
        try:
            sessions[name] = load(device)
        except ViewfinderError as exc:  # MissingDependencyError, ConfigError, ProviderError...
            skipped[name] = str(exc)


def _first_session(loaders: Mapping[str, Loader], device: str, sessions: dict[str, Session],
                   skipped: dict[str, str]) -> Session:
    errors: list[ViewfinderError] = []
    for name, load in loaders.items():
        try:
            sessions[name] = load(device)
            return sessions[name]
        except ViewfinderError as exc:
            skipped[name] = str(exc)
            errors.append(exc)
    raise errors[-1] if errors else ConfigError("backend auto: no backend available")


def _by_request(request: str) -> dict | None:
    """The stored decision made for this request, if any."""
    for entry in _load_cache().values():
        if isinstance(entry, dict) and request in entry.get("requests", ()):
            return entry
    return None


def _cached_session(loaders: Mapping[str, Loader], device: str, request: str
                    ) -> Session | None:
    """The backend decided for this request before, loaded alone (None: measure)."""
    hit = _by_request(request)
    name = hit.get("backend") if hit else None
    if name not in loaders:
        return None
    try:
        session = loaders[name](device)
    except ViewfinderError as exc:  # e.g. its package went away: decide again
        log.debug("cached backend %s does not load (%s)", name, exc)
        return None
    session.choice_reason = f"{hit['reason']} (cached)"  # type: ignore[index]
    return session


def _measure(path: str | Path, key: str, sessions: dict[str, Session], skipped: dict[str, str],
             trial: Mapping[str, Sequence[int]], precision: str, threads: int,
             request: str | None = None) -> tuple[str, str]:
    if len(sessions) == 1:
        chosen = next(iter(sessions))
        return chosen, f"auto: {chosen}, the only backend that can run it" + "".join(
            f"; {k} skipped: {v}" for k, v in skipped.items())
    first = next(iter(sessions.values()))
    feeds = {i.name: np.zeros(trial[i.name], dtype=i.dtype) for i in first.inputs}
    times = _time(sessions, feeds)
    chosen = next(iter(times))  # the reference backend keeps ties
    for name, t in times.items():
        if t < times[chosen] * (1.0 - _MARGIN):
            chosen = name
    reason = _describe(chosen, times, trial, precision, threads, skipped)
    _store(key, {"backend": chosen, "reason": reason, "model": str(path),
                 "best_ms": {k: round(v * 1e3, 4) for k, v in times.items()}}, request)
    return chosen, reason


def choose_backend(path: str | Path, loaders: Mapping[str, Loader], precision: str = "f32",
                   threads: int = 0, device: str = "cpu",
                   shapes: Mapping[str, Sequence[int]] | None = None,
                   provider: str = "cpu") -> Session:
    """Load ``path`` on the fastest backend of ``loaders`` (cached decision).

    Args:
        path: The model file.
        loaders: ``{backend: load(device) -> Session}`` in preference order (ties go first).
        precision: Requested precision (backends that cannot run it are skipped).
        threads: Thread count used for the trial and the key (0 = process budget).
        device: Device name passed to the loaders.
        shapes: Input shapes for the trial (needed for dynamic inputs unless the zoo
            knows the model's default size).
        provider: ONNX Runtime provider the ``ort`` loader uses (part of the cache key).

    Returns:
        The chosen session, with ``choice_reason`` set.
    """
    threads = thread_budget(threads)
    request = request_key(path, list(loaders), precision, threads, device, shapes, provider)
    cached = _cached_session(loaders, device, request)
    if cached is not None:
        log.info("%s: %s", Path(path).name, cached.choice_reason)
        return cached
    sessions: dict[str, Session] = {}
    skipped: dict[str, str] = {}
    first = _first_session(loaders, device, sessions, skipped)
    trial = trial_shapes(first, shapes)
    key = cache_key(path, precision, threads, device, trial, provider)
    hit = _load_cache().get(key)
    if hit and hit.get("backend") in loaders:
        _load_all(loaders, device, sessions, skipped, only=hit["backend"])
    if hit and hit.get("backend") in sessions:
        chosen, reason = hit["backend"], f"{hit['reason']} (cached)"
        _store(key, hit, request)  # found by its request from now on
    else:
        _load_all(loaders, device, sessions, skipped)
        chosen, reason = _measure(path, key, sessions, skipped, trial, precision, threads,
                                  request)
    for name, sess in sessions.items():
        if name != chosen:
            sess.close()
    session = sessions[chosen]
    session.choice_reason = reason
    log.info("%s: %s", Path(path).name, reason)
    return session
