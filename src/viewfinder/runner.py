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
from viewfinder.media.sources import Entry, Failure, Item, Source
from viewfinder.sinks import Sink
from viewfinder.structures import Detections

__all__ = ["RunReport", "StreamFigures", "Task", "prefetch", "run"]

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

    def frames(self, batch: list[tuple[str, np.ndarray, float]]) -> list[Detections]:
        """The next frame of several streams at once (``(stream, image, time)`` each),
        each stream keeping its own state: what the runner calls when it reads several
        live streams together."""


@dataclass
class StreamFigures:
    """Per-stream figures of a run: frames in and out, drops, capture-to-result latency.

    Attributes:
        frames_in: Frames the source decoded (live: received from the camera or URL).
        frames_out: Frames processed.
        dropped: Live frames replaced by a newer one before the task could take them.
        latencies: Seconds from decoding to the result being written, per frame (live).
        seconds: Wall time from the stream's first to its last frame.
        outages: ``(start s, seconds, cause, attempts)`` of every drop and reconnect.
    """

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    outages: list[tuple[float, float, str, int]] = field(default_factory=list)

    @property
    def fps_out(self) -> float:
        """Frames processed per second."""
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    @property
    def fps_in(self) -> float:
        """Frames decoded per second."""
        return self.frames_in / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        """Capture-to-result latency percentile ``q`` (0-100) in ms; NaN without live frames."""
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")

    def summary(self) -> str:
        """One line: fps in/out, drops, latency p50/p99, outages."""
        text = f"{self.frames_out} frames, {self.fps_in:.1f} fps in, {self.fps_out:.1f} fps out"
        if self.dropped:
            text += f", {self.dropped} dropped ({self.dropped / max(self.frames_in, 1):.0%})"
        if self.latencies:
            text += (f", latency p50 {self.latency_ms(50):.0f} ms, "
                     f"p99 {self.latency_ms(99):.0f} ms")
        if self.outages:
            down = sum(o[1] for o in self.outages)
            text += f", {len(self.outages)} outage(s), {down:.1f} s down"
        return text


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
        figures: :class:`StreamFigures` per video, camera or URL.
    """

    images: int = 0
    frames: int = 0
    detections: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    streams: dict[str, int] = field(default_factory=dict)
    figures: dict[str, StreamFigures] = field(default_factory=dict)

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
        self.status: Callable[[RunReport], None] | None = None
        self._shown = time.monotonic()
        self._spans: dict[str, list[float]] = {}

    def tick(self) -> None:
        """Hand the report to ``status`` about once a second."""
        if self.status is not None and time.monotonic() - self._shown >= 1.0:
            self._shown = time.monotonic()
            self.status(self.report)

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
        self.count(item, result)

    def process_batch(self, items: list[Item]) -> None:
        """The next frame of several streams, through ``task.frames`` in one call."""
        batch = [(str(it.origin.stream), it.image, it.origin.time or 0.0) for it in items]
        try:
            results = self.task.frames(batch)
        except ViewfinderError as exc:
            for it in items:
                where = f"{it.origin.stream}#frame {it.origin.frame}"
                self.report.failures.append(Failure(it.origin.source, where, str(exc),
                                                    it.origin.stream))
            return
        with _stage(self.profiler, "draw / encode"):
            for it, result in zip(items, results, strict=True):
                for sink in self.sinks:
                    sink.write(it, result)
        for it, result in zip(items, results, strict=True):
            self.count(it, result)

    def end_stream(self, entry: Entry, end: BaseException, reader: Any) -> None:
        """A stream read together with others has ended (cleanly, or with an error)."""
        for sink in self.sinks:
            sink.end_stream(entry.location)
        if isinstance(end, ViewfinderError):
            self.report.failures.append(Failure(entry.source, entry.location, str(end),
                                                entry.location))
        elif not isinstance(end, StopIteration):
            raise end
        for index, message in getattr(reader, "errors", []):
            self.report.failures.append(Failure(entry.source, f"{entry.location}#frame {index}",
                                                message, entry.location))

    def count(self, item: Item, result: Detections) -> None:
        """Add one written result to the report."""
        stream = item.origin.stream
        if stream is not None:
            span = self._spans.setdefault(stream, [time.monotonic(), 0.0])
            span[1] = time.monotonic()
        if stream is None:
            self.report.images += 1
        else:
            self.report.frames += 1
            self.report.streams[stream] = self.report.streams.get(stream, 0) + 1
            fig = self.report.figures.setdefault(stream, StreamFigures())
            fig.frames_out += 1
            fig.seconds = span[1] - span[0]
            if item.captured is not None:
                fig.latencies.append(time.monotonic() - item.captured)
        self.report.detections += len(result)
        if self.on_result is not None:
            self.on_result(item, result)


def run(task: Task, source: Source, sinks: Sequence[Sink] = (), *,
        progress: Callable[[int, int | None], None] | None = None, decode_ahead: int = 4,
        profiler: Any = None, on_result: Callable[[Item, Detections], None] | None = None,
        status: Callable[[RunReport], None] | None = None) -> RunReport:
    """Run ``task`` over every item of ``source`` and write the results to ``sinks``.

    Still images, then the frames of each video in turn. Several streams of which at
    least one is live (a camera or URL) are read together instead: every step takes
    the next frame of each stream that has one (for live ones in ``latest`` mode the
    newest) and hands them to ``task.frames`` in one batch.

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
        status: Called with the report so far, about once a second (live figures).

    Returns:
        The :class:`RunReport`; failures are in it, not raised.
    """
    state = _Run(task, sinks, profiler, on_result)
    state.status = status
    together = source.is_live and len(source.streams) > 1
    first = source.subset([e for e in source.entries if e.kind == "image"]) if together \
        else source
    total = source.total() if progress is not None else None
    t0 = time.perf_counter()
    ok = False
    try:
        done = _sequential(state, first, decode_ahead, progress, total)
        if together:
            _together(state, source, source.streams, progress, done, total)
        ok = True
    finally:
        for sink in sinks:
            sink.close(ok)
        state.report.seconds = time.perf_counter() - t0
        _live_figures(state.report, source)
    return state.report


def _sequential(state: _Run, source: Source, decode_ahead: int,
                progress: Callable[[int, int | None], None] | None, total: int | None) -> int:
    items: Iterator[Item | Failure] = iter(source)
    if decode_ahead > 0:
        items = prefetch(items, decode_ahead)
    done = 0
    try:
        while True:
            with _stage(state.profiler, "decode"):
                item = next(items, None)
            if item is None:
                break
            if isinstance(item, Failure):
                state.report.failures.append(item)
            else:
                state.process(item)
            done += 1
            state.tick()
            if progress is not None:
                progress(done, total)
        state.switch(None)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
    return done


def _together(state: _Run, source: Source, entries: list[Entry],
              progress: Callable[[int, int | None], None] | None, done: int,
              total: int | None) -> None:
    """Several streams read at once, one batch per step."""
    notify = threading.Event()
    active = {e.location: (e, source.open_reader(e, notify)) for e in entries}
    try:
        while active:
            notify.clear()
            batch = []
            for loc, (entry, reader) in list(active.items()):
                got = reader.poll()
                if got is None:
                    continue
                if isinstance(got, BaseException):
                    del active[loc]
                    state.end_stream(entry, got, reader)
                    continue
                batch.append(source.item(entry, got))
            if not batch:
                notify.wait(0.05)
                continue
            state.process_batch(batch)
            done += len(batch)
            state.tick()
            if progress is not None:
                progress(done, total)
    finally:
        for _, reader in active.values():
            reader.close()


def _live_figures(report: RunReport, source: Source) -> None:
    """Frames in, drops and outages from the live readers."""
    for loc, reader in source.readers.items():
        fig = report.figures.setdefault(loc, StreamFigures())
        stats = reader.stats
        fig.frames_in, fig.dropped = stats.received, stats.dropped
        fig.outages = [(o.start, o.seconds, o.cause, o.attempts) for o in stats.outages]
        if stats.started and stats.ended:
            fig.seconds = stats.ended - stats.started
    for fig in report.figures.values():
        fig.frames_in = max(fig.frames_in, fig.frames_out)
