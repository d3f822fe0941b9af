"""Video ↔ files of frames: the ``frames`` and ``encode`` steps of the workflow."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from viewfinder.errors import ConfigError, InputFileError, ShapeError
from viewfinder.fileio import atomic_write_bytes, expand_files
from viewfinder.media.image import encode_image, read_image
from viewfinder.media.video.reader import VideoReader
from viewfinder.media.video.writer import VideoWriter

__all__ = ["ExportResult", "encode_images", "export_frames", "list_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_EXPORT_FORMATS = ("jpg", "png", "yuv")


@dataclass
class ExportResult:
    """What :func:`export_frames` wrote."""

    written: int = 0
    files: list[Path] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    matrix: str = "bt601"
    full_range: bool = False

    @property
    def yuv_range(self) -> str:
        """``"full"`` or ``"limited"``: the range of the stream (and of exported .yuv)."""
        return "full" if self.full_range else "limited"


def _prepare_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputFileError(f"{out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"{out_dir}: cannot create the directory ({exc.strerror})") from exc
    if not os.access(out_dir, os.W_OK):
        raise InputFileError(f"{out_dir}: directory is not writable")


def export_frames(source: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                  out_format: str = "jpg", every: int = 1, start: float | None = None,
                  end: float | None = None, max_frames: int | None = None,
                  quality: int = 95, threads: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Decode a video into ``frame_NNNNNN.<jpg|png|yuv>`` files (yuv: compact NV12).

    Corrupt frames are written as the decoder concealed them and listed in
    ``ExportResult.errors``; each file is written atomically.

    Args:
        progress: Optional ``progress(frames_written, frames_expected)``.
    """
    if out_format not in _EXPORT_FORMATS:
        raise ConfigError(f"frame format {out_format!r}: expected one of "
                          f"{', '.join(_EXPORT_FORMATS)}")
    fmt = "nv12" if out_format == "yuv" else "bgr24"
    reader = VideoReader(source, fmt=fmt, every=every, start=start, end=end,
                         max_frames=max_frames, threads=threads)
    total = len(reader)
    out = Path(out_dir)
    _prepare_dir(out)
    result = ExportResult()
    digits = max(6, len(str(reader.info.frames)))
    with reader:
        for frame in reader:
            path = out / f"frame_{frame.index:0{digits}d}.{out_format}"
            if out_format == "yuv":
                data = frame.image.tobytes()
            else:
                data = encode_image(frame.image, f".{out_format}", "bgr24", quality)
            atomic_write_bytes(path, data)
            if not result.files:
                result.matrix, result.full_range = frame.matrix, frame.full_range
            result.files.append(path)
            result.written += 1
            if progress is not None:
                progress(result.written, total)
    result.errors = list(reader.errors)
    return result


def list_images(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files named by ``inputs``: files as given, directories in name order."""
    return expand_files(inputs, IMAGE_SUFFIXES, f"images ({', '.join(IMAGE_SUFFIXES)})",
                        file_kind="image file")


def encode_images(files: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str],
                  fps: float = 25.0, codec: str = "h264", crf: int = 23,
                  preset: str = "medium",
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Encode image files, in order, to a video; all must have the first one's size.

    ``progress(frames_written, frames_total)`` is called after each frame.

    Returns:
        The number of frames written. On any error no output file is left.
    """
    if not files:
        raise InputFileError(f"{output}: no input images")
    first_shape: tuple[int, ...] = ()
    with VideoWriter(output, fps=fps, codec=codec, crf=crf, preset=preset) as writer:
        for i, f in enumerate(files):
            image = read_image(f, "bgr24")
            if first_shape and image.shape[:2] != first_shape:
                raise ShapeError(f"{f}: image is {image.shape[1]}x{image.shape[0]}, the first "
                                 f"frame is {first_shape[1]}x{first_shape[0]}")
            first_shape = image.shape[:2]
            writer.write(image)
            if progress is not None:
                progress(i + 1, len(files))
    return writer.frames

