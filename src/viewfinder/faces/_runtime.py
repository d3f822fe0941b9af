"""How the face package reaches models and backends, and the stage profiler.

Models and sessions come from :mod:`viewfinder.runtime` (zoo, ``load_session``);
this module only adapts them to the face package's arguments.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from viewfinder.runtime.base import Session

__all__ = ["NULL_PROFILER", "Profiler", "open_session", "resolve_model"]

log = logging.getLogger(__name__)

def resolve_model(name_or_path: str | Path, task: str | None = None) -> Path:
    """A zoo name (``scrfd_500m``...) or a ``.onnx`` path -> an existing model file.

    Goes through :func:`viewfinder.runtime.zoo.resolve_model`, the one resolver.

    Raises:
        ModelError: the zoo's local copy fails its checksum (never swallowed).
        ModelNotFoundError: neither an existing file nor a zoo model available locally
            (``VIEWFINDER_MODELS``, the cache) or by download.
    """
    from viewfinder.runtime.zoo import resolve_model as resolve

    return resolve(name_or_path, task=task, identify=False)[0]


def open_session(path: str | Path, backend: str = "auto", provider: str = "cpu",
                 threads: int = 0, precision: str = "f32",
                 shapes: dict[str, tuple[int, ...]] | None = None) -> Session:
    """Load a model through :func:`viewfinder.runtime.session.load_session`.

    ``shapes`` (input name -> shape) is what ``backend="auto"`` times its trial on.
    """
    from viewfinder.runtime.session import load_session

    return load_session(path, backend=backend, provider=provider, threads=threads,
                        precision=precision, shapes=shapes or None)


class Profiler:
    """Accumulates wall time per named stage: ``with prof.stage("detect infer"): ...``.

    Disabled profilers cost one attribute check per stage.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.totals: dict[str, float] = {}
        self.frames = 0
        self.notes: list[str] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body of the ``with`` block under ``name``."""
        if not self.enabled:
            yield
            return
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t0

    def add(self, name: str, seconds: float) -> None:
        """Add time measured elsewhere (e.g. work overlapped with another stage)."""
        if self.enabled:
            self.totals[name] = self.totals.get(name, 0.0) + seconds

    def reset(self) -> None:
        """Forget all timings."""
        self.totals.clear()
        self.frames = 0

    def rows(self) -> list[tuple[str, float, float]]:
        """``(stage, ms per frame, share of the total)`` in first-seen order."""
        total = sum(self.totals.values()) or 1.0
        n = max(self.frames, 1)
        return [(k, v * 1e3 / n, v / total) for k, v in self.totals.items()]


NULL_PROFILER = Profiler(enabled=False)
