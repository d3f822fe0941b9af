"""Running a detector over an image, a folder of images, or a video.

Outputs are all-or-nothing per file: annotated images via
:func:`viewfinder.draw.save_image`, annotated video via
:class:`viewfinder.media.video.VideoWriter`, and the JSON report via
:func:`viewfinder.fileio.atomic_write_text`. Undecodable images in a folder and
corrupt video frames are recorded as failures and skipped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from viewfinder.draw import color_for, draw_boxes, save_image
from viewfinder.errors import ConfigError, DecodeError, InputFileError
from viewfinder.fileio import atomic_write_text
from viewfinder.structures import Detections

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "RunResult", "annotate", "check_source",
           "detect_source"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".h264", ".h265", ".264", ".265")
_VIDEO_OUT = (".mp4", ".mkv", ".mov")


class _Detector(Protocol):
    def detect(self, image: np.ndarray) -> Detections: ...


@dataclass
class RunResult:
    """What a run produced: one record per image or frame, and the failures."""

    kind: str
    records: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def detections(self) -> int:
        """Total number of detections."""
        return sum(len(r["detections"]) for r in self.records)


def annotate(image: np.ndarray, dets: Detections) -> np.ndarray:
    """Draw labelled boxes (``"dog 0.87"``), one colour per class."""
    labels = [f"{dets.label(i)} {dets.scores[i]:.2f}" for i in range(len(dets))]
    colors = [color_for(int(c)) for c in dets.class_ids]
    return draw_boxes(image, dets.boxes, labels, colors)


def check_source(source: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> str:
    """Validate a source and its output path before any work; returns the source kind
    (``"image"``, ``"folder"`` or ``"video"``).

    Raises:
        InputFileError, ConfigError: a missing source, unknown type, or unfit output path.
    """
    kind = _kind(Path(source))
    _check_out(kind, Path(out) if out is not None else None)
    return kind


def _kind(source: Path) -> str:
    if source.is_dir():
        return "folder"
    if not source.exists():
        raise InputFileError(f"{source}: no such file or directory")
    suffix = source.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise ConfigError(f"{source}: unknown source type {suffix or '(no suffix)'}; expected an "
                      f"image ({', '.join(IMAGE_SUFFIXES)}), a video or a folder")


def _check_out(kind: str, out: Path | None) -> None:
    if out is None:
        return
    if kind == "folder" and out.suffix:
        raise ConfigError(f"--out {out}: a folder source needs an output directory")
    if kind == "image" and out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"--out {out}: expected an image file ({', '.join(IMAGE_SUFFIXES)})")
    if kind == "video" and out.suffix.lower() not in _VIDEO_OUT:
        raise ConfigError(f"--out {out}: expected a video file ({', '.join(_VIDEO_OUT)})")
    parent = out if kind == "folder" else out.parent
    if kind != "folder" and not parent.is_dir():
        raise InputFileError(f"--out {out}: output directory {parent} does not exist")


def detect_source(detector: _Detector, source: str | os.PathLike[str], *,
                  out: str | os.PathLike[str] | None = None,
                  json_path: str | os.PathLike[str] | None = None,
                  max_frames: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Detect in an image, every image of a folder, or every frame of a video.

    Args:
        detector: Anything with ``detect(bgr_image) -> Detections``.
        source: Image file, folder, or video file.
        out: Annotated output: an image file, a directory (folder source) or a video file.
        json_path: Write every record as JSON here.
        max_frames: Stop a video after this many frames.
        progress: ``progress(done, total)`` after each image or frame.

    Returns:
        The records (``{"source", "frame", "detections": [...]}``) and failures.
    """
    from viewfinder.media import read_image

    src, out_p = Path(source), Path(out) if out is not None else None
    kind = check_source(src, out_p)
    result = RunResult(kind)
    if kind == "video":
        _run_video(detector, src, out_p, result, max_frames, progress)
    else:
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) \
            if kind == "folder" else [src]
        if not files:
            raise InputFileError(f"{src}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        if kind == "folder" and out_p is not None:
            out_p.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(files):
            try:
                image = read_image(f)
            except DecodeError as exc:
                if kind == "image":
                    raise
                result.failures.append((str(f), str(exc)))
                continue
            dets = detector.detect(image)
            result.records.append({"source": str(f), "detections": dets.to_dicts()})
            if out_p is not None:
                save_image(out_p / f.name if kind == "folder" else out_p, annotate(image, dets))
            if progress is not None:
                progress(i + 1, len(files))
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(result.records, indent=1))
    return result


def _run_video(detector: _Detector, src: Path, out: Path | None, result: RunResult,
               max_frames: int | None, progress: Callable[[int, int], None] | None) -> None:
    from viewfinder.media.video import VideoReader, VideoWriter

    reader = VideoReader(src, fmt="bgr24", max_frames=max_frames)
    total = len(reader)
    writer = VideoWriter(out, fps=reader.info.fps or 25.0) if out is not None else None
    try:
        for frame in reader:
            dets = detector.detect(frame.image)
            result.records.append({"source": str(src), "frame": frame.index,
                                   "time": round(frame.time, 4), "detections": dets.to_dicts()})
            if writer is not None:
                writer.write(annotate(frame.image, dets))
            if progress is not None:
                progress(len(result.records), total)
    except BaseException as exc:
        if writer is not None:
            writer.__exit__(type(exc), exc, None)
        raise
    if writer is not None:
        writer.close()
    result.failures.extend((f"{src}#frame{i}", msg) for i, msg in reader.errors)
