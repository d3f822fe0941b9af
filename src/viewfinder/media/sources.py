"""Every input a pipeline reads, as one stream of decoded images with their origin.

:func:`open_source` takes what a user types after a command: an image file, a
folder (``recursive=True`` for subfolders), a glob (``"shots/**/*.jpg"``), a text
file listing paths (``.txt``/``.lst``, one per line, ``#`` comments), a video file,
a raw ``.h264``/``.h265`` stream, a camera index (``0``), or a URL that FFmpeg opens
(``rtsp://``, ``http(s)://``, ``udp://``, ``tcp://``, ``rtmp://``...). Several of them
make one :class:`Source`.

Iterating a source yields :class:`Item` (a BGR image and its :class:`Origin`) and,
for inputs that fail, :class:`Failure` (where and why), in input order, so a run
goes on past a corrupt photo or frame and reports it at the end. Still images are
independent; the frames of one video or live stream share a ``stream`` name, so a
tracker knows when a new one starts.

Everything that can be checked without decoding (missing files, empty folders,
unknown types) is checked by :func:`open_source`, before any work starts.
"""

from __future__ import annotations

import glob as globlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.errors import ConfigError, InputFileError, ViewfinderError
from viewfinder.fileio import check_readable

__all__ = ["IMAGE_SUFFIXES", "LIST_SUFFIXES", "URL_SCHEMES", "VIDEO_SUFFIXES", "Entry",
           "Failure", "Item", "Origin", "Source", "is_image_file", "is_url", "open_source"]

log = logging.getLogger(__name__)

#: Still-image suffixes (lower case), the one list every command uses.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp")
#: Video containers and raw elementary streams.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".ts", ".mts",
                  ".h264", ".264", ".avc", ".h265", ".265", ".hevc")
#: Text files that list inputs, one path per line.
LIST_SUFFIXES = (".txt", ".lst")
#: URL schemes handed to FFmpeg.
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "rtp", "srt")

_GLOB_CHARS = frozenset("*?[")


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a still image (by suffix)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL FFmpeg should open (``rtsp://...``)."""
    scheme, sep, _ = str(text).partition("://")
    return bool(sep) and scheme.lower() in URL_SCHEMES


@dataclass(frozen=True)
class Origin:
    """Where an image came from.

    Attributes:
        source: The source as the user gave it (a folder, a glob, a URL...).
        path: The file the image was decoded from; None for cameras and URLs.
        stream: The video, camera or URL the frame belongs to; None for a still image.
        frame: Frame index in its stream (display order); None for a still image.
        time: Presentation time in seconds; None for a still image.
        width, height: Size of the decoded image.
        relpath: ``path`` relative to the source's root (a folder, a glob's fixed
            prefix, a list file's folder): what an output folder mirrors.
    """

    source: str
    path: str | None
    stream: str | None
    frame: int | None
    time: float | None
    width: int
    height: int
    relpath: str | None = None

    @property
    def image_id(self) -> str:
        """The file stem of a still image (VOC's image id); ``stem/frame`` for frames of a
        video, ``address/frame`` (``tcp_127.0.0.1_9000/000012``) for cameras and URLs."""
        if self.path is not None:
            name = Path(self.path).stem
        else:  # a camera or URL: its address, made a file-system-safe name
            name = re.sub(r"[^A-Za-z0-9.-]+", "_", str(self.stream or self.source)).strip("_")
        return name if self.frame is None else f"{name}/{self.frame:06d}"

    def to_dict(self) -> dict[str, Any]:
        """The origin part of a JSON-lines record."""
        return {"source": self.source, "path": self.path, "image_id": self.image_id,
                "frame": self.frame, "time": None if self.time is None else round(self.time, 6),
                "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Item:
    """A decoded image: ``(H, W, 3)`` uint8 BGR, where it came from, and for live
    sources when it was decoded (``time.monotonic()``, for capture-to-result latency)."""

    image: np.ndarray
    origin: Origin
    captured: float | None = None


@dataclass(frozen=True)
class Failure:
    """An input that could not be read: ``where`` (a file, ``video.mp4#frame 12``) and why."""

    source: str
    where: str
    message: str
    stream: str | None = None


@dataclass(frozen=True)
class Entry:
    """One input of a source, resolved but not opened.

    Attributes:
        kind: ``"image"``, ``"video"``, ``"camera"`` or ``"url"``.
        location: The file path, camera index or URL.
        source: The source argument it was found through.
        relpath: Path relative to that source's root (files only).
    """

    kind: str
    location: str
    source: str
    relpath: str | None = None

    @property
    def live(self) -> bool:
        """Cameras and URLs: no known length."""
        return self.kind in ("camera", "url")


class Source:
    """Resolved inputs, iterated as :class:`Item` / :class:`Failure` in input order.

    Args:
        entries: The inputs (see :func:`open_source`).
        max_frames: Stop each video or stream after this many frames.
        timeout: Seconds to wait when opening or reading a URL or camera.
        live: ``"latest"`` (the newest frame, the rest dropped and counted) or ``"all"``
            for cameras and URLs; files always give every frame.
        reconnect: Reconnect attempts per outage of a camera or URL.

    Attributes:
        readers: The :class:`~viewfinder.media.live.LiveReader` of every camera or URL
            opened so far, by location (their ``stats``: frames, drops, outages).
    """

    def __init__(self, entries: Sequence[Entry], *, max_frames: int | None = None,
                 timeout: float = 10.0, live: str = "latest", reconnect: int = 5) -> None:
        from viewfinder.media.live import LIVE_MODES

        if live not in LIVE_MODES:
            raise ConfigError(f"live mode {live!r}: expected one of {', '.join(LIVE_MODES)}")
        if int(reconnect) < 0:
            raise ConfigError(f"reconnect {reconnect}: expected attempts >= 0")
        self.entries = list(entries)
        self.max_frames = max_frames
        self.timeout = float(timeout)
        self.live, self.reconnect = live, int(reconnect)
        self.readers: dict[str, Any] = {}
        self._probed: dict[str, Any] = {}

    def probe(self, location: str) -> Any:
        """:func:`viewfinder.media.video.probe` of a video entry, once per source (a raw
        stream's probe reads the whole file to count its packets)."""
        if location not in self._probed:
            from viewfinder.media.video import probe  # stills need no video modules

            self._probed[location] = probe(location)
        return self._probed[location]

    @property
    def images(self) -> int:
        """Number of still images."""
        return sum(e.kind == "image" for e in self.entries)

    @property
    def streams(self) -> list[Entry]:
        """Videos, cameras and URLs."""
        return [e for e in self.entries if e.kind != "image"]

    def total(self) -> int | None:
        """Items the source will yield if nothing fails; None for live inputs."""
        if any(e.live for e in self.entries):
            return None
        n = self.images
        for e in self.streams:
            try:
                frames = self.probe(e.location).frames
            except ViewfinderError:
                frames = 1  # it fails when opened, as one failure
            n += min(frames, self.max_frames) if self.max_frames else frames
        return n

    def subset(self, entries: Sequence[Entry]) -> Source:
        """A source over some of these entries, with the same options (and readers)."""
        sub = Source(entries, max_frames=self.max_frames, timeout=self.timeout,
                     live=self.live, reconnect=self.reconnect)
        sub.readers, sub._probed = self.readers, self._probed
        return sub

    @property
    def is_live(self) -> bool:
        """Whether any input is a camera or URL."""
        return any(e.live for e in self.entries)

    def __iter__(self) -> Iterator[Item | Failure]:
        for entry in self.entries:
            if entry.kind == "image":
                yield _read_still(entry)
            else:
                yield from self._read_stream(entry)

    def open_reader(self, entry: Entry, notify: Any = None) -> Any:
        """A started :class:`~viewfinder.media.live.LiveReader` over a stream entry (files
        give every frame; cameras and URLs follow ``live``), to read several streams at
        once; ``notify`` (a ``threading.Event``) is set on every new frame."""
        from viewfinder.media.live import LiveReader

        mode = self.live if entry.live else "all"
        reader = LiveReader(entry.kind, entry.location, mode=mode, timeout=self.timeout,
                            reconnect=self.reconnect if entry.live else 0,
                            max_frames=self.max_frames, notify=notify)
        self.readers[entry.location] = reader
        reader.start()
        return reader

    def item(self, entry: Entry, frame: Any) -> Item:
        """The :class:`Item` of a :class:`~viewfinder.media.live.LiveFrame` of ``entry``."""
        return _frame_item(entry, frame.index, frame.time, frame.image,
                           frame.captured if entry.live else None)

    def _read_stream(self, entry: Entry) -> Iterator[Item | Failure]:
        """Frames of a video, camera or URL; one failure when it cannot be opened."""
        from viewfinder.media.stream import open_stream

        try:
            frames = open_stream(entry.kind, entry.location, self.max_frames, self.timeout,
                                 live=self.live, reconnect=self.reconnect)
            if frames.reader is not None:
                self.readers[entry.location] = frames.reader
            for index, t, image in frames:
                yield _frame_item(entry, index, t, image, frames.captured)
            errors = frames.errors
        except ViewfinderError as exc:
            yield Failure(entry.source, entry.location, str(exc), entry.location)
            return
        for index, message in errors:
            yield Failure(entry.source, f"{entry.location}#frame {index}", message,
                          entry.location)


def open_source(specs: str | int | os.PathLike[str] | Sequence[str | int | os.PathLike[str]],
                *, recursive: bool = False, max_frames: int | None = None,
                timeout: float = 10.0, live: str = "latest", reconnect: int = 5) -> Source:
    """Resolve what the user gave into a :class:`Source` (nothing is decoded yet).

    Args:
        specs: One source or several (see the module docstring for the kinds).
        recursive: Folders include their subfolders.
        max_frames: Stop each video or stream after this many frames.
        timeout: Seconds to wait when opening or reading a URL or camera.
        live: How cameras and URLs hand frames to a slower consumer: ``"latest"`` (the
            newest, the rest dropped and counted: bounded latency) or ``"all"``.
        reconnect: Reconnect attempts per outage of a camera or URL (0: none).

    Raises:
        InputFileError: a missing file or folder, a folder or glob with no images or
            videos, an empty list file.
        ConfigError: a file of unknown type, a bad ``max_frames`` or ``timeout``.
    """
    if max_frames is not None and int(max_frames) < 1:
        raise ConfigError(f"max_frames {max_frames}: expected at least 1")
    if not float(timeout) > 0:
        raise ConfigError(f"timeout {timeout}: expected a positive number of seconds")
    items = [specs] if isinstance(specs, str | int | os.PathLike) else list(specs)
    if not items:
        raise InputFileError("no source given")
    entries: list[Entry] = []
    for spec in items:
        entries.extend(_resolve(spec, recursive))
    return Source(entries, max_frames=max_frames, timeout=timeout, live=live,
                  reconnect=reconnect)


def _resolve(spec: str | int | os.PathLike[str], recursive: bool) -> list[Entry]:
    text = os.fspath(spec) if not isinstance(spec, int) else str(spec)
    if isinstance(spec, int) or text.isdigit():
        return [Entry("camera", text, text)]
    if is_url(text):
        return [Entry("url", text, text)]
    path = Path(text)
    if path.is_dir():
        return _folder(path, text, recursive)
    if not path.exists() and _GLOB_CHARS & set(text):
        return _glob(text)
    if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
        return _listed(path, text)
    return [_file(path, text, path.name)]


def _kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _file(path: Path, source: str, relpath: str) -> Entry:
    kind = _kind_of(path)
    check_readable(path, "video" if kind == "video" else "image" if kind else "file")
    if kind is None:
        raise ConfigError(
            f"{path}: unknown source type {path.suffix or '(no suffix)'}; expected an image "
            f"({', '.join(IMAGE_SUFFIXES)}), a video ({', '.join(VIDEO_SUFFIXES[:6])}...), a "
            f"folder, a glob, a list of paths ({', '.join(LIST_SUFFIXES)}), a camera index "
            f"or a URL")
    return Entry(kind, str(path), source, relpath)


def _media_files(root: Path, files: Sequence[Path], source: str) -> list[Entry]:
    found = [f for f in files if f.is_file() and _kind_of(f) is not None]
    return [Entry(str(_kind_of(f)), str(f), source, f.relative_to(root).as_posix()
                  if f.is_relative_to(root) else f.name) for f in sorted(found)]


def _folder(path: Path, source: str, recursive: bool) -> list[Entry]:
    files = path.rglob("*") if recursive else path.iterdir()
    entries = _media_files(path, list(files), source)
    if not entries:
        where = "folder or its subfolders" if recursive else "folder"
        raise InputFileError(f"{path}: the {where} holds no images ({', '.join(IMAGE_SUFFIXES)}) "
                             f"or videos")
    return entries


def _glob(pattern: str) -> list[Entry]:
    parts = Path(pattern).parts
    fixed = next((i for i, p in enumerate(parts) if _GLOB_CHARS & set(p)), len(parts))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    entries = _media_files(root, [Path(p) for p in globlib.glob(pattern, recursive=True)],
                           pattern)
    if not entries:
        raise InputFileError(f"{pattern}: the pattern matches no images or videos")
    return entries


def _listed(path: Path, source: str) -> list[Entry]:
    check_readable(path, "list of paths")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read the list of paths ({exc})") from None
    entries = []
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if is_url(text) or text.isdigit():
            entries.append(Entry("url" if is_url(text) else "camera", text, source))
            continue
        p = Path(text) if Path(text).is_absolute() else path.parent / text
        try:
            entries.append(_file(p, source, text))
        except ViewfinderError as exc:
            raise type(exc)(f"{path}:{n}: {exc}") from None
    if not entries:
        raise InputFileError(f"{path}: the list of paths is empty")
    return entries


def _read_still(entry: Entry) -> Item | Failure:
    from viewfinder.media.image import read_image

    try:
        image = read_image(entry.location, "bgr24")
    except ViewfinderError as exc:
        return Failure(entry.source, entry.location, str(exc))
    h, w = image.shape[:2]
    return Item(image, Origin(entry.source, entry.location, None, None, None, w, h,
                              entry.relpath))


def _frame_item(entry: Entry, index: int, t: float, image: np.ndarray,
                captured: float | None) -> Item:
    """The :class:`Item` of frame ``index`` of a stream entry."""
    h, w = image.shape[:2]
    path = entry.location if entry.kind == "video" else None
    return Item(image, Origin(entry.source, path, entry.location, index, t, w, h,
                              entry.relpath), captured)
