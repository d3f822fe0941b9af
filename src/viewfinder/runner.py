"""The one runner: a task over a source, into sinks.

    >>> from viewfinder.media.sources import open_source
    >>> from viewfinder.sinks import open_sinks
    >>> from viewfinder.tasks import build_task
    >>> from viewfinder.runner import run
    >>> source = open_source(["photos/", "clip.mp4"])
    >>> report = run(build_task("faces"), source, open_sinks(source, "out/", "faces.jsonl"))

``viewfinder faces``, ``detect`` and ``dpm detect`` are argument parsing over
:func:`run`. A still image goes through :meth:`Task.image`; the frames of a video
or live stream through :meth:`Task.frame`, with :meth:`Task.reset` between streams
(trackers start afresh). Decoding runs a few items ahead in a background thread
(FFmpeg, libjpeg-turbo and the inference backends release the GIL). An input that
fails (a corrupt photo, a broken frame, a stream that will not open) or an image
the task rejects becomes a :class:`~viewfinder.media.sources.Failure` and the run
goes on; any other error stops it, and the sinks discard what is incomplete.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from viewfinder.errors import ViewfinderError
from viewfinder.media.sources import Failure, Item, Source
from viewfinder.sinks import Sink
from viewfinder.structures import Detections

__all__ = ["RunReport", "Task", "prefetch", "run"]

log = logging.getLogger(__name__)


class Task(Protocol):
    """What the runner runs: anything that turns an image into :class:`Detections`."""

    name: str

    def image(self, image: np.ndarray) -> Detections:
        """Results of one still image (independent of every other call)."""

    def frame(self, image: np.ndarray, time: float) -> Detections:
        """Results of the next frame of the current stream (trackers may keep state)."""

    def reset(self) -> None:
        """A new stream starts."""


@dataclass
class RunReport:
    """What a run did.

    Attributes:
        images: Still images processed.
        frames: Video or stream frames processed.
        detections: Results over all images and frames.
        failures: Inputs that could not be read or processed, in input order.
        seconds: Wall time of the whole run.
        streams: Frames processed per stream.
    """

    images: int = 0
    frames: int = 0
    detections: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    streams: dict[str, int] = field(default_factory=dict)

    @property
    def items(self) -> int:
        """Images and frames processed."""
        return self.images + self.frames

    @property
    def rate(self) -> float:
        """Images and frames per second over the whole run."""
        return self.items / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: what was processed, how fast, and how many failures."""
        parts = []
        if self.images:
            parts.append(f"{self.images} image{'s' * (self.images != 1)}")
        if self.frames:
            parts.append(f"{self.frames} frame{'s' * (self.frames != 1)} of "
                         f"{len(self.streams)} stream{'s' * (len(self.streams) != 1)}")
        text = ", ".join(parts) or "nothing processed"
        text += f", {self.detections} detection{'s' * (self.detections != 1)}"
        text += f" in {self.seconds:.2f} s ({self.rate:.1f}/s)"
        if self.failures:
            text += f"; {len(self.failures)} failed"
        return text


_DONE = object()


def prefetch(items: Iterator[Any], depth: int = 4) -> Iterator[Any]:
    """Run an iterator (a decoder) in a background thread, ``depth`` items ahead.

    Exceptions raised by the iterator are re-raised here, in order; closing this
    generator stops the thread.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=work, name="viewfinder-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=2.0)


def _stage(profiler: Any, name: str) -> Any:
    return profiler.stage(name) if profiler is not None else contextlib.nullcontext()


class _Run:
    """One run's state: the current stream and the report."""

    def __init__(self, task: Task, sinks: Sequence[Sink], profiler: Any,
                 on_result: Callable[[Item, Detections], None] | None) -> None:
        self.task, self.sinks, self.profiler, self.on_result = task, sinks, profiler, on_result
        self.report = RunReport()
        self.stream: str | None = None

    def switch(self, stream: str | None) -> None:
        """End the current stream when the next item belongs elsewhere."""
        if stream == self.stream:
            return
        if self.stream is not None:
            for sink in self.sinks:
                sink.end_stream(self.stream)
        self.stream = stream
        if stream is not None:
            self.task.reset()

    def process(self, item: Item) -> None:
        stream = item.origin.stream
        self.switch(stream)
        try:
            if stream is None:
                result = self.task.image(item.image)
            else:
                result = self.task.frame(item.image, item.origin.time or 0.0)
        except ViewfinderError as exc:
            where = item.origin.path or f"{stream}#frame {item.origin.frame}"
            self.report.failures.append(Failure(item.origin.source, where, str(exc), stream))
            return
        with _stage(self.profiler, "draw / encode"):
            for sink in self.sinks:
                sink.write(item, result)
        if stream is None:
            self.report.images += 1
        else:
            self.report.frames += 1
            self.report.streams[stream] = self.report.streams.get(stream, 0) + 1
        self.report.detections += len(result)
        if self.on_result is not None:
            self.on_result(item, result)


def run(task: Task, source: Source, sinks: Sequence[Sink] = (), *,
        progress: Callable[[int, int | None], None] | None = None, decode_ahead: int = 4,
        profiler: Any = None, on_result: Callable[[Item, Detections], None] | None = None
        ) -> RunReport:
    """Run ``task`` over every item of ``source`` and write the results to ``sinks``.

    Args:
        task: See :class:`Task` (:func:`viewfinder.tasks.build_task` makes one).
        source: From :func:`viewfinder.media.sources.open_source`.
        sinks: From :func:`viewfinder.sinks.open_sinks`; closed by this call.
        progress: ``progress(done, total)`` after every item (``total`` None for live
            sources).
        decode_ahead: Items decoded ahead in a background thread (0: inline).
        profiler: Something with ``stage(name)`` context managers (the face pipeline's
            :class:`~viewfinder.faces._runtime.Profiler`) to time ``decode`` and
            ``draw / encode``.
        on_result: Called with every item and its result (after the sinks).

    Returns:
        The :class:`RunReport`; failures are in it, not raised.
    """
    state = _Run(task, sinks, profiler, on_result)
    total = source.total() if progress is not None else None
    t0 = time.perf_counter()
    items: Iterator[Item | Failure] = iter(source)
    if decode_ahead > 0:
        items = prefetch(items, decode_ahead)
    ok = False
    try:
        done = 0
        while True:
            with _stage(profiler, "decode"):
                item = next(items, None)
            if item is None:
                break
            if isinstance(item, Failure):
                state.report.failures.append(item)
            else:
                state.process(item)
            done += 1
            if progress is not None:
                progress(done, total)
        state.switch(None)
        ok = True
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
        for sink in sinks:
            sink.close(ok)
        state.report.seconds = time.perf_counter() - t0
    return state.report
