"""Live sources (network cameras, URLs, local cameras) that survive drops and keep latency
bounded.

A :class:`LiveReader` decodes in its own thread, so the network is read while the model
works. Two ways to take frames:

* ``mode="latest"``: the consumer always gets the newest frame; frames that arrived
  while it was busy are dropped and counted, so latency stays bounded when the model is
  slower than the camera (what a live camera needs);
* ``mode="all"``: every frame, in order, through a bounded queue (the reader waits when
  the consumer is behind).

When an established stream drops (EOF, a read time-out, a network error) the reader
reconnects with exponential back-off (``reconnect`` attempts per outage, delays
``backoff`` · 2^k capped at ``max_delay``), logs each outage and keeps counting frames
across it. A stream that cannot be opened at all fails at once with one clear line
(time-outs included), without retrying.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewfinder.errors import ConfigError, InputFileError, ViewfinderError

__all__ = ["LIVE_MODES", "LiveFrame", "LiveReader", "LiveStats", "Outage"]

log = logging.getLogger(__name__)

#: How a live source hands frames to a slower consumer.
LIVE_MODES = ("latest", "all")


@dataclass(frozen=True)
class LiveFrame:
    """One decoded frame of a live source.

    Attributes:
        index: Frame number since the stream was first opened (continues across
            reconnects; dropped frames are counted too).
        time: Seconds since the first frame arrived (wall clock).
        captured: ``time.monotonic()`` when the frame was decoded (for latency).
        image: ``(H, W, 3)`` uint8 BGR.
    """

    index: int
    time: float
    captured: float
    image: np.ndarray


@dataclass(frozen=True)
class Outage:
    """A drop of the stream: when (seconds since start), how long, the cause, attempts."""

    start: float
    seconds: float
    cause: str
    attempts: int


@dataclass
class LiveStats:
    """What a live reader saw: frames received and dropped, outages, its frame rate."""

    received: int = 0
    delivered: int = 0
    outages: list[Outage] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    @property
    def dropped(self) -> int:
        """Frames that arrived but were replaced by a newer one before being taken."""
        return max(0, self.received - self.delivered)

    @property
    def fps_in(self) -> float:
        """Frames received per second of the stream's life."""
        span = (self.ended or time.monotonic()) - self.started
        return self.received / span if self.started and span > 0 else 0.0


_END = object()
_EOF = "the stream ended"


class LiveReader:
    """Decode a URL or camera in a thread; iterate for :class:`LiveFrame`.

    Args:
        kind: ``"url"`` or ``"camera"``.
        location: The URL or the camera index.
        mode: ``"latest"`` or ``"all"`` (see the module docstring).
        timeout: Seconds to wait for the stream to open or for a frame.
        reconnect: Attempts per outage before giving up (0: never reconnect).
        backoff: First delay between attempts, in seconds (doubling after each).
        max_delay: Longest delay between attempts.
        max_frames: Stop after this many frames delivered.
        queue_size: Frames buffered in ``"all"`` mode.
        notify: An event set whenever a frame (or the end) arrives, so that one loop can
            wait on several readers.

    Iterating raises the error that ended the stream (:class:`InputFileError` when it
    never opened or when the reconnect attempts ran out) after the frames before it.
    """

    def __init__(self, kind: str, location: str, *, mode: str = "latest",
                 timeout: float = 10.0, reconnect: int = 5, backoff: float = 0.5,
                 max_delay: float = 8.0, max_frames: int | None = None,
                 queue_size: int = 8, notify: threading.Event | None = None) -> None:
        if mode not in LIVE_MODES:
            raise ConfigError(f"live mode {mode!r}: expected one of {', '.join(LIVE_MODES)}")
        if reconnect < 0 or backoff <= 0 or max_delay < backoff:
            raise ConfigError(f"reconnect {reconnect}, backoff {backoff} s, max delay "
                              f"{max_delay} s: expected attempts >= 0 and 0 < backoff <= max")
        self.kind, self.location, self.mode = kind, location, mode
        self.timeout, self.reconnect = float(timeout), int(reconnect)
        self.backoff, self.max_delay = float(backoff), float(max_delay)
        self.max_frames, self.queue_size = max_frames, int(queue_size)
        self.stats = LiveStats()
        self.fps = 25.0
        self._buf: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0: float | None = None
        self._index = 0
        self._finite = False  # an http(s) file: its end is the end, not a drop
        self._notify = notify
        self.errors: list[tuple[int, str]] = []  # a file's concealed frames

    # ------------------------------------------------------------------ consumer side
    def __iter__(self) -> Iterator[LiveFrame]:
        self.start()
        delivered = 0
        try:
            while self.max_frames is None or delivered < self.max_frames:
                item = self._take()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                delivered += 1
                self.stats.delivered += 1
                yield item
        finally:
            self.close()

    def poll(self) -> LiveFrame | BaseException | None:
        """The next frame without waiting (None if none is ready; the ending error, or
        StopIteration at the end). For muxing several streams in one loop."""
        if self.max_frames is not None and self.stats.delivered >= self.max_frames:
            self.close()
            return StopIteration()
        with self._cond:
            if not self._buf:
                return None
            item = self._pop()
        if item is _END:
            return StopIteration()
        if isinstance(item, LiveFrame):
            self.stats.delivered += 1
        return item

    def start(self) -> None:
        """Start the reader thread (iteration does it too)."""
        if self._thread is None:
            self.stats.started = time.monotonic()
            self._thread = threading.Thread(target=self._work, name=f"live {self.location}",
                                            daemon=True)
            self._thread.start()

    def _take(self) -> Any:
        with self._cond:
            while not self._buf:
                self._cond.wait(0.1)
            return self._pop()

    def _pop(self) -> Any:
        if self.mode == "latest":
            frames = [x for x in self._buf if isinstance(x, LiveFrame)]
            ends = [x for x in self._buf if not isinstance(x, LiveFrame)]
            self._buf.clear()
            if frames:
                self._buf.extend(ends)  # the end comes after the newest frame
                self._cond.notify_all()
                return frames[-1]
            return ends[0]
        item = self._buf.popleft()
        self._cond.notify_all()
        return item

    def close(self) -> None:
        """Stop the reader thread."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.timeout + 2)
        if not self.stats.ended:
            self.stats.ended = time.monotonic()

    # ------------------------------------------------------------------ reader side
    def _put(self, item: Any) -> None:
        with self._cond:
            if self.mode == "all" and isinstance(item, LiveFrame):
                while len(self._buf) >= self.queue_size and not self._stop.is_set():
                    self._cond.wait(0.1)
            self._buf.append(item)
            self._cond.notify_all()
        if self._notify is not None:
            self._notify.set()

    def _frame(self, image: np.ndarray, t: float | None) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self.stats.received += 1
        self._put(LiveFrame(self._index, now - self._t0 if t is None else t, now, image))
        self._index += 1

    def _work(self) -> None:
        try:
            self._session()
        except BaseException as exc:  # handed to the consumer
            self._put(exc)
        else:
            self._put(_END)
        finally:
            self.stats.ended = time.monotonic()

    def _session(self) -> None:
        frames = self._open()  # fails at once, never retried
        while not self._stop.is_set():
            cause = self._pump(frames)
            if cause is None or self._stop.is_set():
                return
            if cause == _EOF and not self.reconnect:
                return  # not reconnecting: the end of the stream is its end
            frames = self._recover(cause)

    def _pump(self, frames: Iterator[tuple[np.ndarray, float | None]]) -> str | None:
        """Decode until the stream ends; the cause of a drop, or None for a clean end."""
        try:
            for image, t in frames:
                self._frame(image, t)
                if self._stop.is_set():
                    return None
        except ViewfinderError as exc:
            return str(exc)
        return None if self._finite else _EOF

    def _recover(self, cause: str) -> Iterator[tuple[np.ndarray, float | None]]:
        """Reconnect with back-off; the new frames, or raise when the attempts run out."""
        start = time.monotonic()
        since = start - (self.stats.started or start)
        log.warning("%s: stream lost (%s); reconnecting", self.location, cause)
        delay = self.backoff
        for attempt in range(1, self.reconnect + 1):
            if self._stop.wait(delay):
                raise InputFileError(f"{self.location}: stopped while reconnecting")
            try:
                frames = self._open()
            except ViewfinderError as exc:
                log.warning("%s: reconnect attempt %d/%d failed (%s); next in %.1f s",
                            self.location, attempt, self.reconnect, exc,
                            min(delay * 2, self.max_delay))
                delay = min(delay * 2, self.max_delay)
                continue
            seconds = time.monotonic() - start
            self.stats.outages.append(Outage(round(since, 3), round(seconds, 3), cause, attempt))
            log.warning("%s: reconnected after %.1f s (attempt %d)", self.location, seconds,
                        attempt)
            return frames
        seconds = time.monotonic() - start
        self.stats.outages.append(Outage(round(since, 3), round(seconds, 3), cause,
                                         self.reconnect))
        raise InputFileError(f"{self.location}: stream lost ({cause}) and {self.reconnect} "
                             f"reconnect attempt(s) over {seconds:.1f} s failed")

    def _open(self) -> Iterator[tuple[np.ndarray, float | None]]:
        """Frames with their presentation time (None: the wall clock counts)."""
        if self.kind == "camera":
            return self._camera()
        if self.kind == "video":
            return self._file()
        from viewfinder.media.stream import _open_url, _url_frames

        container = _open_url(self.location, self.timeout)
        stream = container.streams.video[0] if container.streams.video else None
        if stream is None:
            container.close()
            raise InputFileError(f"{self.location}: no video stream")
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else self.fps
        # an http(s) file has a duration: its end is the end, not a drop
        self._finite = bool(container.duration) and self.location.lower().startswith("http")
        return ((image, None) for image in _url_frames(container, stream, self.location,
                                                       self.timeout))

    def _file(self) -> Iterator[tuple[np.ndarray, float | None]]:
        from viewfinder.media.video import VideoReader

        reader = VideoReader(self.location, fmt="bgr24", max_frames=self.max_frames)
        self.fps, self._finite = reader.info.fps or 25.0, True

        def frames() -> Iterator[tuple[np.ndarray, float | None]]:
            with reader:
                for frame in reader:
                    yield frame.image, frame.time
            self.errors.extend(reader.errors)

        return frames()

    def _camera(self) -> Iterator[tuple[np.ndarray, float | None]]:
        from viewfinder.media.stream import open_camera

        cap, fps = open_camera(int(self.location))
        self.fps = fps

        def frames() -> Iterator[tuple[np.ndarray, float | None]]:
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        raise InputFileError(f"camera {self.location}: no frame")
                    yield frame, None
            finally:
                with contextlib.suppress(Exception):
                    cap.release()

        return frames()
