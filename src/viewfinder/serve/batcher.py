"""Batching across requests: a bounded queue and one worker thread per task.

Requests put their images on the queue of their task's :class:`Batcher`
(:meth:`Batcher.submit`, which refuses at once when the queue is full: the
service answers 503 then, it never waits for room). The worker takes the oldest
job and waits until ``max_batch`` jobs are there or ``max_wait`` has passed since
that job arrived, whichever comes first (Ray Serve's ``@serve.batch``), then runs
them as one call of the task's batch function. Each job's future gets its own
result, in the order of the jobs, so every request receives the results of its
own image. A batch that raises is run again job by job, so a bad image fails
only its own request.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewfinder.errors import ConfigError

__all__ = ["BatchFunction", "Batcher", "Job", "QueueFullError"]

log = logging.getLogger(__name__)

#: ``fn(images, options) -> results``: one result per image, in order.
BatchFunction = Callable[[Sequence[np.ndarray], Sequence[dict[str, Any]]], Sequence[Any]]


class QueueFullError(Exception):
    """The queue has no room for the request's images (answered 503)."""


@dataclass
class Job:
    """One image waiting for its batch."""

    image: np.ndarray
    options: dict[str, Any]
    future: Future = field(default_factory=Future)
    queued: float = field(default_factory=time.perf_counter)


class Batcher:
    """A bounded queue and the worker thread that runs its jobs in batches.

    Args:
        name: The task's name (thread name, logs, metrics).
        fn: The batch function (see :data:`BatchFunction`).
        max_batch: Most images in one call.
        max_wait_ms: Longest wait for more jobs after the oldest one arrived.
        queue_size: Most images waiting (not counting the batch being run).
        on_batch: Called with ``(size, seconds)`` after every batch (metrics).
        delay_ms: Extra sleep per batch (tests: a slow model).
    """

    def __init__(self, name: str, fn: BatchFunction, *, max_batch: int = 8,
                 max_wait_ms: float = 5.0, queue_size: int = 16,
                 on_batch: Callable[[int, float], None] | None = None,
                 delay_ms: float = 0.0) -> None:
        if max_batch < 1 or queue_size < 1 or max_wait_ms < 0:
            raise ConfigError(f"batcher {name}: expected max_batch >= 1, queue_size >= 1 and "
                              f"max_wait_ms >= 0, got {max_batch}, {queue_size}, {max_wait_ms}")
        self.name, self.fn = name, fn
        self.max_batch, self.max_wait = int(max_batch), float(max_wait_ms) / 1e3
        self.queue_size = int(queue_size)
        self.on_batch, self.delay = on_batch, float(delay_ms) / 1e3
        self._jobs: collections.deque[Job] = collections.deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._running = 0
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ submitting
    @property
    def depth(self) -> int:
        """Images waiting in the queue."""
        return len(self._jobs)

    @property
    def busy(self) -> int:
        """Images in the batch being run now."""
        return self._running

    def room(self) -> int:
        """Images the queue can still take."""
        return 0 if self._stopping else self.queue_size - len(self._jobs)

    def submit(self, images: Sequence[np.ndarray], options: dict[str, Any]) -> list[Future]:
        """Queue the images of one request (all or none); their futures, in order.

        Raises:
            QueueFullError: not enough room for all of them, or the batcher is stopping.
        """
        jobs = [Job(im, options) for im in images]
        with self._cv:
            if self._stopping or len(self._jobs) + len(jobs) > self.queue_size:
                raise QueueFullError(f"{self.name}: queue full ({len(self._jobs)} of "
                                     f"{self.queue_size} images waiting)")
            self._jobs.extend(jobs)
            self._cv.notify()
        return [j.future for j in jobs]

    # ------------------------------------------------------------ the worker
    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"batcher-{self.name}",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Refuse new jobs, finish the queued ones (up to ``timeout`` seconds), then stop;
        jobs still queued after that fail with :class:`QueueFullError`."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cv:
            left, self._jobs = list(self._jobs), collections.deque()
        for job in left:
            if not job.future.done():
                job.future.set_exception(QueueFullError(f"{self.name}: shutting down"))

    def _take(self) -> list[Job] | None:
        """The next batch (None: stopped and empty)."""
        with self._cv:
            while not self._jobs:
                if self._stopping:
                    return None
                self._cv.wait()
            batch = [self._jobs.popleft()]
            deadline = batch[0].queued + self.max_wait
            while len(batch) < self.max_batch:
                if self._jobs:
                    batch.append(self._jobs.popleft())
                    continue
                left = deadline - time.perf_counter()
                if left <= 0 or self._stopping:
                    break
                self._cv.wait(left)
            self._running = len(batch)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            t0 = time.perf_counter()
            try:
                self._run(batch)
            finally:
                self._running = 0
            if self.on_batch is not None:
                self.on_batch(len(batch), time.perf_counter() - t0)

    def _run(self, batch: list[Job]) -> None:
        if self.delay:
            time.sleep(self.delay)
        try:
            results = list(self.fn([j.image for j in batch], [j.options for j in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} images")
        except BaseException as exc:  # noqa: BLE001 - each job is retried alone below
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            log.debug("%s: batch of %d failed (%s); one by one", self.name, len(batch), exc)
            for job in batch:
                self._run([job])
            return
        for job, result in zip(batch, results, strict=True):
            job.future.set_result(result)
