"""The service's settings: which tasks, and the batching and limits they run under.

The defaults were measured (docs/serve.md, "Batching"): ``max_batch=8``,
``max_wait_ms=2`` and a queue of 16 images (two batches: at twice the capacity an
accepted request waits at most about (16 + 8) / capacity seconds, the rest get 503 at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from viewfinder.errors import ConfigError
from viewfinder.tasks import TASKS, TaskSpec

__all__ = ["DEFAULT_MAX_BODY", "ServeConfig"]

#: Request body cap (bytes): 32 MiB.
DEFAULT_MAX_BODY = 32 << 20


@dataclass(frozen=True)
class ServeConfig:
    """What ``viewfinder serve`` runs.

    Attributes:
        tasks: The tasks to load (one :class:`~viewfinder.tasks.TaskSpec` per task name).
        max_batch: Most images in one model call.
        max_wait_ms: Longest wait for more images after the oldest queued one arrived.
        queue_size: Images that may wait per task; past it requests get 503.
        max_body: Request body cap in bytes (413 past it).
        max_pixels: Pixel cap per image, checked from the header (413); None reads
            ``VIEWFINDER_MAX_PIXELS`` (:func:`viewfinder.media.limits.max_pixels`).
        drain_seconds: On SIGTERM, how long requests in flight may take to finish.
        retry_after: Seconds a 503 tells the client to wait (``Retry-After``).
        batch_delay_ms: Extra time per batch (tests and demos of back-pressure only).
    """

    tasks: tuple[TaskSpec, ...] = field(default_factory=lambda: (TaskSpec("faces"),))
    max_batch: int = 8
    max_wait_ms: float = 2.0
    queue_size: int = 16
    max_body: int = DEFAULT_MAX_BODY
    max_pixels: int | None = None
    drain_seconds: float = 20.0
    retry_after: int = 1
    batch_delay_ms: float = 0.0

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if not names:
            raise ConfigError("serve: expected at least one task")
        unknown = [n for n in names if n not in TASKS]
        if unknown:
            raise ConfigError(f"serve: unknown task {unknown[0]!r}; expected "
                              f"{', '.join(TASKS)}")
        if len(set(names)) != len(names):
            raise ConfigError(f"serve: task listed twice in {', '.join(names)}")
        checks = (("max_batch", self.max_batch, 1), ("queue_size", self.queue_size, 1),
                  ("max_body", self.max_body, 1), ("max_wait_ms", self.max_wait_ms, 0),
                  ("drain_seconds", self.drain_seconds, 0),
                  ("batch_delay_ms", self.batch_delay_ms, 0))
        for name, value, low in checks:
            if value < low:
                raise ConfigError(f"serve: {name}={value}: expected >= {low}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ConfigError(f"serve: max_pixels={self.max_pixels}: expected >= 1")

    def spec(self, name: str) -> TaskSpec:
        """The spec of one task."""
        return next(t for t in self.tasks if t.name == name)
