"""Where results go: JSON lines and annotated images or videos, all or nothing.

Every command writes the same record, one JSON object per image or frame
(:func:`make_record`): the origin (``source``, ``path``, ``image_id``, ``frame``,
``time``, ``width``, ``height``) and the results (``detections``, see
:meth:`viewfinder.structures.Detections.to_dicts`). ``viewfinder eval voc`` reads
these files, and the HTTP service answers with the same record.

Annotated output (``--out``) follows the source: a single image to an image file,
a single video or stream to a video file, and anything else to a folder that
mirrors the input names (``shots/a/1.jpg`` → ``OUT/a/1.jpg``; each video to
``OUT/<name>.mp4``). :func:`check_outputs` checks every location before work
starts. Files appear only when complete: JSON lines when the run ends without an
error and wrote at least one record, each image when written, each video when its
stream ends.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from viewfinder.errors import ConfigError, InputFileError
from viewfinder.fileio import atomic_path
from viewfinder.media.sources import IMAGE_SUFFIXES, Entry, Item, Origin, Source
from viewfinder.structures import Detections

__all__ = ["VIDEO_OUT_SUFFIXES", "AnnotatedSink", "JsonLinesSink", "Sink", "check_outputs",
           "make_record", "open_sinks"]

log = logging.getLogger(__name__)

#: Suffixes ``--out`` accepts for an annotated video.
VIDEO_OUT_SUFFIXES = (".mp4", ".mkv", ".mov")


def make_record(origin: Origin, result: Detections) -> dict[str, Any]:
    """The JSON record of one image or frame: its origin and its detections."""
    return {**origin.to_dict(), **result.to_dict()}


class Sink(Protocol):
    """What the runner writes to."""

    def write(self, item: Item, result: Detections) -> None:
        """Take one image's result."""

    def end_stream(self, stream: str) -> None:
        """A video or live stream has ended (its file can be finished)."""

    def close(self, ok: bool) -> None:
        """Finish (``ok``) or discard everything not yet complete."""


class JsonLinesSink:
    """One :func:`make_record` line per image or frame, to a file or stdout (``"-"``).

    A file appears only when :meth:`close` is called with ``ok`` and at least one
    record was written; stdout gets each line as it is made (flushed).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.records = 0
        self._stack = contextlib.ExitStack()
        self._file: IO[str]
        if self.path == "-":
            self._file = sys.stdout
        else:
            tmp = self._stack.enter_context(atomic_path(self.path))
            self._file = self._stack.enter_context(open(tmp, "w", encoding="utf-8"))  # noqa: SIM115

    def write(self, item: Item, result: Detections) -> None:
        """Append the record of one image or frame."""
        self.write_record(make_record(item.origin, result))

    def write_record(self, record: dict[str, Any]) -> None:
        """Append one record as it is."""
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        if self.path == "-":
            self._file.flush()
        self.records += 1

    def end_stream(self, stream: str) -> None:
        """Nothing to do: lines are independent."""

    def close(self, ok: bool) -> None:
        """Move the file into place (``ok`` and not empty) or delete it."""
        if self.path == "-":
            return
        if ok and self.records:
            self._stack.close()
            return
        if ok:
            log.info("%s: no records, not written", self.path)
        error = RuntimeError("discarded")
        self._stack.__exit__(type(error), error, None)


class AnnotatedSink:
    """Annotated images and videos (see the module docstring for where they go).

    Args:
        out: An image file, a video file or a folder.
        source: The source, to know where each input's picture goes.
        draw: ``draw(image, result) -> image`` (default: ``result.draw(image)``).
    """

    def __init__(self, out: str | os.PathLike[str], source: Source,
                 draw: Any = None) -> None:
        self.out = Path(out)
        self.layout = _layout(self.out, source.entries)
        self._targets = _targets(self.out, self.layout, source.entries)
        self._draw = draw or _draw_result
        self._writers: dict[str, Any] = {}
        self._fps = _stream_rates(source)

    def part(self, locations: Iterable[str]) -> AnnotatedSink:
        """This sink for some of its inputs only (the same targets, nothing open), to send
        to a worker process (:mod:`viewfinder.scale`); picklable when ``draw`` is."""
        part = copy.copy(self)
        part._targets = {loc: self._targets[loc] for loc in locations if loc in self._targets}
        part._fps = {loc: fps for loc, fps in self._fps.items() if loc in part._targets}
        part._writers = {}
        return part

    def targets(self) -> dict[str, Path]:
        """Where each input's picture or video goes (by location)."""
        return dict(self._targets)

    def write(self, item: Item, result: Detections) -> None:
        """Draw and write one image, or add one frame to its stream's video."""
        picture = self._draw(item.image, result)
        origin = item.origin
        if origin.stream is None:
            from viewfinder.draw import save_image

            target = self._targets[str(origin.path)]
            target.parent.mkdir(parents=True, exist_ok=True)
            save_image(target, picture)
            return
        writer = self._writers.get(origin.stream)
        if writer is None:
            from viewfinder.media.video import VideoWriter

            target = self._targets[origin.stream]
            target.parent.mkdir(parents=True, exist_ok=True)
            writer = VideoWriter(target, self._fps.get(origin.stream, 25.0), codec="h264",
                                 preset="veryfast")
            self._writers[origin.stream] = writer
        writer.write(_fit(picture, writer))

    def end_stream(self, stream: str) -> None:
        """Finish the video of ``stream``."""
        writer = self._writers.pop(stream, None)
        if writer is not None:
            writer.close()

    def close(self, ok: bool) -> None:
        """Finish (``ok``) or delete the videos still open."""
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            if ok:
                writer.close()
            else:
                writer.__exit__(RuntimeError, RuntimeError("discarded"), None)


def _draw_result(image: np.ndarray, result: Detections) -> np.ndarray:
    """The default drawing (a module function, so that a sink pickles)."""
    return result.draw(image)


def _fit(picture: np.ndarray, writer: Any) -> np.ndarray:
    """A frame whose size changed mid-stream, resized to the video's size."""
    stream = getattr(writer, "_stream", None)
    if stream is None or picture.shape[:2] == (stream.height, stream.width):
        return picture
    import cv2

    return cv2.resize(picture, (stream.width, stream.height), interpolation=cv2.INTER_AREA)


def _stream_rates(source: Source) -> dict[str, float]:
    from viewfinder.errors import ViewfinderError

    rates = {}
    for e in source.entries:
        if e.kind == "video":
            with contextlib.suppress(ViewfinderError):  # it fails again, reported, when read
                rates[e.location] = source.probe(e.location).fps or 25.0
    return rates


def _layout(out: Path, entries: list[Entry]) -> str:
    """``"image"`` (one file), ``"video"`` (one file) or ``"folder"``."""
    suffix = out.suffix.lower()
    stills = sum(e.kind == "image" for e in entries)
    streams = len(entries) - stills
    if suffix in IMAGE_SUFFIXES:
        if (stills, streams) != (1, 0):
            raise ConfigError(f"--out {out}: an image file holds one picture; the source has "
                              f"{_count(stills, streams)}: give a folder")
        return "image"
    if suffix in VIDEO_OUT_SUFFIXES:
        if (stills, streams) != (0, 1):
            raise ConfigError(f"--out {out}: a video file holds one stream; the source has "
                              f"{_count(stills, streams)}: give a folder")
        return "video"
    if suffix and not out.is_dir():
        raise ConfigError(f"--out {out}: expected an image file ({', '.join(IMAGE_SUFFIXES)}), "
                          f"a video file ({', '.join(VIDEO_OUT_SUFFIXES)}) or a folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    return "folder"


def _count(stills: int, streams: int) -> str:
    return f"{stills} image(s) and {streams} video(s) or stream(s)"


def _stream_name(entry: Entry, n: int) -> str:
    if entry.kind == "video":
        return str(Path(entry.relpath or Path(entry.location).name).with_suffix(".mp4"))
    if entry.kind == "camera":
        return f"camera{entry.location}.mp4"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", entry.location.split("://", 1)[-1])[:80] + f"-{n}.mp4"


def _targets(out: Path, layout: str, entries: list[Entry]) -> dict[str, Path]:
    """Output path per still (by path) and per stream (by location); collisions refused."""
    if layout != "folder":
        return {entries[0].location: out}
    targets: dict[str, Path] = {}
    seen: dict[Path, str] = {}
    for n, e in enumerate(entries):
        rel = e.relpath or Path(e.location).name if e.kind == "image" else _stream_name(e, n)
        target = out / rel
        if target in seen and seen[target] != e.location:
            raise ConfigError(f"--out {out}: {seen[target]} and {e.location} would both be "
                              f"written to {target}")
        if e.kind != "image" or target.resolve() != Path(e.location).resolve():
            seen[target] = e.location
        else:
            raise ConfigError(f"--out {out}: would overwrite the input {e.location}")
        targets[e.location] = target
    return targets


def check_outputs(source: Source, out: str | os.PathLike[str] | None,
                  json_path: str | os.PathLike[str] | None) -> None:
    """Every output location, checked before any work.

    Raises:
        ConfigError: ``--out`` does not fit the source (an image file for a folder...).
        InputFileError: a parent folder that does not exist, or ``--json`` is a folder.
    """
    if json_path is not None and str(json_path) != "-":
        p = Path(json_path)
        if p.is_dir():
            raise InputFileError(f"--json {p}: is a folder, expected a file (or '-')")
        if not (p.parent if str(p.parent) else Path(".")).is_dir():
            raise InputFileError(f"--json {p}: output directory {p.parent} does not exist")
    if out is None:
        return
    o = Path(out)
    layout = _layout(o, source.entries)
    parent = o.parent if layout != "folder" else o
    while layout == "folder" and not parent.exists():
        parent = parent.parent
    if not (parent if str(parent) else Path(".")).is_dir():
        raise InputFileError(f"--out {o}: output directory {parent} does not exist")
    _targets(o, layout, source.entries)


def open_sinks(source: Source, out: str | os.PathLike[str] | None = None,
               json_path: str | os.PathLike[str] | None = None, draw: Any = None
               ) -> list[Sink]:
    """The sinks a command's ``--out`` and ``--json`` ask for (checked first)."""
    check_outputs(source, out, json_path)
    sinks: list[Sink] = []
    if json_path is not None:
        sinks.append(JsonLinesSink(json_path))
    if out is not None:
        sinks.append(AnnotatedSink(out, source, draw))
    return sinks
