"""The service's state, independent of the web framework: the loaded tasks, their
batchers, readiness, and the metrics.

:meth:`Service.start` loads and warms every task in a background thread, so that
``/livez`` answers at once while ``/readyz`` says 503 until the models are warm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from viewfinder.serve.batcher import Batcher
from viewfinder.serve.config import ServeConfig
from viewfinder.serve.metrics import Metrics

__all__ = ["Served", "Service"]

log = logging.getLogger(__name__)


@dataclass
class Served:
    """One task being served: the task, its batcher, and what runs it."""

    name: str
    task: Any
    batcher: Batcher
    models: list[dict[str, Any]]
    names: list[str]


class Service:
    """Everything one ``viewfinder serve`` process holds.

    Args:
        config: What to load and how to batch.
        tasks: Prebuilt tasks by name (tests; anything with ``name`` and ``image``),
            used instead of building ``config.tasks``.
        on_fatal: Called with the message when the models fail to load (the CLI stops
            the server then).
    """

    def __init__(self, config: ServeConfig, tasks: dict[str, Any] | None = None,
                 on_fatal: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._prebuilt = tasks
        self.on_fatal = on_fatal
        self.served: dict[str, Served] = {}
        self.ready = threading.Event()
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.load_seconds = 0.0
        self.metrics = Metrics(self._gauges)
        self._thread: threading.Thread | None = None

    @property
    def names(self) -> list[str]:
        """The tasks this service answers for."""
        return [t.name for t in self.config.tasks] if self._prebuilt is None \
            else list(self._prebuilt)

    def _gauges(self) -> dict[str, tuple[int, int]]:
        return {n: (s.batcher.depth, s.batcher.busy) for n, s in self.served.items()}

    def start(self, background: bool = True) -> None:
        """Load, warm and start every task (in a thread unless ``background=False``)."""
        if background:
            self._thread = threading.Thread(target=self._load, name="serve-load", daemon=True)
            self._thread.start()
        else:
            self._load()

    def _load(self) -> None:
        t0 = time.perf_counter()
        try:
            tasks = dict(self._prebuilt) if self._prebuilt is not None else {
                spec.name: spec.build() for spec in self.config.tasks}
            for name, task in tasks.items():
                self.served[name] = self._serve(name, task)
        except Exception as exc:  # noqa: BLE001 - reported by /readyz, raised by serve()
            self.error, self.exception = str(exc) or type(exc).__name__, exc
            log.error("serve: loading failed: %s", self.error)
            if self.on_fatal is not None:
                self.on_fatal(self.error)
            return
        self.load_seconds = time.perf_counter() - t0
        self.metrics.ready = True
        self.ready.set()
        logging.getLogger("uvicorn.error").info(
            "viewfinder: %s ready in %.1f s", ", ".join(self.served), self.load_seconds)

    def _serve(self, name: str, task: Any) -> Served:
        from viewfinder.serve.models import batch_function, class_names, describe_models, warm_up

        fn = batch_function(task)
        warm_up(task, fn)
        cfg = self.config
        batcher = Batcher(name, fn, max_batch=cfg.max_batch, max_wait_ms=cfg.max_wait_ms,
                          queue_size=cfg.queue_size, delay_ms=cfg.batch_delay_ms,
                          on_batch=lambda size, s: self.metrics.batch(name, size, s))
        batcher.start()
        return Served(name, task, batcher, describe_models(task), class_names(task))

    def stop(self) -> None:
        """Finish the queued images (up to ``drain_seconds``) and stop the workers."""
        for served in self.served.values():
            served.batcher.stop(self.config.drain_seconds)

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """``(status, body)`` of ``/readyz``."""
        if not self.ready.is_set():
            state = "failed" if self.error else "loading"
            body: dict[str, Any] = {"status": state, "tasks": self.names}
            if self.error:
                body["error"] = self.error
            return 503, body
        cfg = self.config
        return 200, {
            "status": "ready", "load_seconds": round(self.load_seconds, 3),
            "tasks": {n: {"models": s.models, "names": s.names}
                      for n, s in self.served.items()},
            "batching": {"max_batch": cfg.max_batch, "max_wait_ms": cfg.max_wait_ms,
                         "queue_size": cfg.queue_size},
            "limits": {"max_body": cfg.max_body, "max_pixels": self.max_pixels()}}

    def max_pixels(self) -> int:
        """The pixel cap in force."""
        from viewfinder.media.limits import max_pixels

        return self.config.max_pixels if self.config.max_pixels is not None else max_pixels()
