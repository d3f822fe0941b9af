"""``viewfinder media …``: the image / yuv / video workflow, one command per step.

A thin layer: each command parses its options, calls :mod:`viewfinder.media`, and
prints one line of result. Bad input raises a ViewfinderError (one line on stderr,
exit 2, no output file). Commands that finish with per-item failures (corrupt
video frames) print a summary and exit 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

_FORMATS = click.Choice(["nv12", "nv21", "i420", "rgb24", "bgr24", "gray8"],
                        case_sensitive=False)
_MODES = click.Choice(["nearest", "bilinear", "area"])


class _InOrder(click.Group):
    """Lists the commands in workflow order, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(name="media", cls=_InOrder)
def cli() -> None:
    """Decode, convert, resize and encode images, raw .yuv and video.

    \b
    Example (the DVPP sample workflow, one command per step):
      viewfinder media to-yuv photo.jpg -o photo.yuv --format nv12 --align dvpp_jpegd
      viewfinder media from-yuv photo.yuv --size 1024x683 --align dvpp_jpegd -o look.png
      viewfinder media resize photo.yuv --in-size 1024x683 --align dvpp_jpegd \\
          --size 416x416 --letterbox -o small.yuv
      viewfinder media demux clip.mp4 -o clip.h264
      viewfinder media frames clip.h264 -o frames/ --every 5
    """


@contextmanager
def _progress(label: str) -> Iterator[Any]:
    """A rich progress bar on stderr; yields ``advance(n_done, n_total)``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _is_yuv(path: Path) -> bool:
    return path.suffix.lower() in (".yuv", ".nv12", ".nv21", ".i420", ".raw")


# ------------------------------------------------------------------------- info
@cli.command("info")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info_cmd(file: Path, as_json: bool) -> None:
    """Describe an image or video FILE (size, format, codec, fps, frames, duration)."""
    from viewfinder.media.info import describe

    facts = describe(file)
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        click.echo(f"{key:<{width}}  {value}")


# ------------------------------------------------------------------------- yuv
@cli.command("to-yuv")
@click.argument("image", type=click.Path(path_type=Path))
@click.option("-o", "--out", "output", type=click.Path(path_type=Path), required=True,
              help="The raw .yuv file to write.")
@click.option("--format", "fmt", type=_FORMATS, default="nv12", show_default=True)
@click.option("--align", default="none", show_default=True,
              help="Alignment profile: none, dvpp_jpegd (128x16), dvpp_vpc (16x2) or WxH.")
def to_yuv_cmd(image: Path, output: Path, fmt: str, align: str) -> None:
    """Decode IMAGE into a raw YUV (or RGB) buffer, padded to an alignment."""
    from viewfinder.media import read_frame, write_yuv

    frame = read_frame(image, fmt.lower(), align)
    write_yuv(output, frame)
    click.echo(f"wrote {output}: {frame.width}x{frame.height} {frame.format.upper()}, buffer "
               f"{frame.aligned_width}x{frame.aligned_height} (align {align}), "
               f"{frame.nbytes} bytes")


def _read_yuv_opts(path: Path, size: str, fmt: str, align: str, index: int,
                   full_range: bool, matrix: str) -> Any:
    from viewfinder.media import parse_size, read_yuv

    width, height = parse_size(size, f"{path}: --size")
    return read_yuv(path, width, height, fmt.lower(), align, index, matrix, full_range)


_yuv_options = [
    click.option("--size", required=True, help="Picture size WxH of the raw file."),
    click.option("--format", "fmt", type=_FORMATS, default="nv12", show_default=True),
    click.option("--align", default="none", show_default=True,
                 help="Alignment the raw file was written with."),
    click.option("--index", default=0, show_default=True, help="Frame of a multi-frame file."),
    click.option("--range", "yuv_range", type=click.Choice(["full", "limited"]),
                 default="full", show_default=True, help="YUV range (JPEG: full; video: limited)."),
    click.option("--matrix", type=click.Choice(["bt601", "bt709"]), default="bt601",
                 show_default=True),
]


def _with_yuv_options(fn: Any) -> Any:
    for opt in reversed(_yuv_options):
        fn = opt(fn)
    return fn


@cli.command("from-yuv")
@click.argument("yuv", type=click.Path(path_type=Path))
@click.option("-o", "--out", "output", type=click.Path(path_type=Path), required=True,
              help="Image to write (.jpg, .png, .bmp, .webp).")
@_with_yuv_options
@click.option("--quality", default=95, show_default=True, help="JPEG/WebP quality.")
def from_yuv_cmd(yuv: Path, output: Path, size: str, fmt: str, align: str, index: int,
                 yuv_range: str, matrix: str, quality: int) -> None:
    """Turn a raw .yuv buffer into a viewable image (the "look at it" step)."""
    from viewfinder.media import write_image

    frame = _read_yuv_opts(yuv, size, fmt, align, index, yuv_range == "full", matrix)
    write_image(output, frame, quality=quality)
    click.echo(f"wrote {output}: {frame.width}x{frame.height} from {frame.format.upper()} "
               f"(buffer {frame.aligned_width}x{frame.aligned_height})")


# ------------------------------------------------------------------------- resize
@cli.command("resize")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--out", "output", type=click.Path(path_type=Path), required=True,
              help="Image or .yuv to write.")
@click.option("--size", "out_size", required=True, help="Output size WxH.")
@click.option("--mode", type=_MODES, default="bilinear", show_default=True)
@click.option("--letterbox", is_flag=True, help="Keep the aspect ratio and pad with black.")
@click.option("--in-size", help="Size WxH of a .yuv SOURCE.")
@click.option("--format", "fmt", type=_FORMATS, default="nv12", show_default=True,
              help="Pixel format of a .yuv SOURCE (and of a .yuv output).")
@click.option("--align", default="none", show_default=True, help="Alignment of a .yuv SOURCE.")
@click.option("--out-align", default="none", show_default=True,
              help="Alignment of a .yuv output.")
def resize_cmd(source: Path, output: Path, out_size: str, mode: str, letterbox: bool,
               in_size: str | None, fmt: str, align: str, out_align: str) -> None:
    """Resize an image or a raw .yuv (NV12 is scaled plane by plane, no RGB)."""
    from viewfinder.errors import ConfigError
    from viewfinder.media import (
        letterbox_frame,
        parse_size,
        read_frame,
        resize,
        write_image,
        write_yuv,
    )

    width, height = parse_size(out_size, "--size")
    if _is_yuv(source):
        if not in_size:
            raise ConfigError(f"{source}: a .yuv source needs --in-size WxH")
        frame = _read_yuv_opts(source, in_size, fmt, align, 0, True, "bt601")
    else:
        frame = read_frame(source, fmt.lower() if _is_yuv(output) else "bgr24")
    if letterbox:
        out, _ = letterbox_frame(frame, width, height, mode, align=out_align)
    else:
        out = resize(frame, width, height, mode, align=out_align)
    if _is_yuv(output):
        write_yuv(output, out)
    else:
        write_image(output, out)
    click.echo(f"wrote {output}: {frame.width}x{frame.height} -> {width}x{height} "
               f"{out.format.upper()} ({mode}{', letterbox' if letterbox else ''})")


# ------------------------------------------------------------------------- video
@cli.command("demux")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--out", "output", type=click.Path(path_type=Path), required=True,
              help="Annex-B elementary stream to write (.h264 / .h265).")
def demux_cmd(video: Path, output: Path) -> None:
    """Copy the H.264/H.265 stream out of VIDEO as Annex-B (no re-encoding)."""
    from viewfinder.media.video import demux

    count = demux(video, output)
    click.echo(f"wrote {output}: {count} packets, {output.stat().st_size} bytes")


@cli.command("frames")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Directory for the frames (created).")
@click.option("--format", "out_format", type=click.Choice(["jpg", "png", "yuv"]),
              default="jpg", show_default=True, help="jpg/png images or raw NV12 .yuv files.")
@click.option("--every", default=1, show_default=True, help="Keep every Nth frame.")
@click.option("--start", type=float, help="Start time in seconds.")
@click.option("--end", type=float, help="End time in seconds (exclusive).")
@click.option("--max", "max_frames", type=int, help="At most this many frames.")
@click.option("--quality", default=95, show_default=True, help="JPEG quality.")
@click.option("--threads", default=0, show_default=True, help="Decoder threads (0 = auto).")
@click.pass_context
def frames_cmd(ctx: click.Context, video: Path, out_dir: Path, out_format: str, every: int,
               start: float | None, end: float | None, max_frames: int | None, quality: int,
               threads: int) -> None:
    """Decode VIDEO (container or raw stream) into numbered frame files."""
    from viewfinder.media.video.export import export_frames

    with _progress(f"frames {video.name}") as advance:
        result = export_frames(video, out_dir, out_format, every=every, start=start, end=end,
                               max_frames=max_frames, quality=quality, threads=threads,
                               progress=advance)
    click.echo(f"wrote {result.written} frames to {out_dir} ({out_format})")
    if out_format == "yuv" and result.written:
        # video is usually limited range, while from-yuv assumes JPEG's full range by default
        click.echo(f"the frames are NV12, {result.matrix} {result.yuv_range} range: read them "
                   f"back with `viewfinder media from-yuv FILE --size WxH --range "
                   f"{result.yuv_range} --matrix {result.matrix}`")
    if result.errors:
        for index, message in result.errors:
            click.echo(f"frame {index}: {message}", err=True)
        click.echo(f"{video}: {len(result.errors)} corrupt frame(s) "
                   f"(first at index {result.errors[0][0]}); decoding went on", err=True)
        ctx.exit(1)


@cli.command("encode")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "output", type=click.Path(path_type=Path), required=True,
              help="Video to write (.mp4, .mkv, .mov).")
@click.option("--fps", type=float, default=25.0, show_default=True)
@click.option("--codec", type=click.Choice(["h264", "h265"]), default="h264", show_default=True)
@click.option("--crf", default=23, show_default=True, help="Quality, 0..51 (lower is better).")
@click.option("--preset", type=click.Choice(["ultrafast", "superfast", "veryfast", "faster",
                                             "fast", "medium", "slow", "slower", "veryslow"]),
              default="medium", show_default=True, help="x264/x265 speed preset.")
def encode_cmd(inputs: tuple[Path, ...], output: Path, fps: float, codec: str, crf: int,
               preset: str) -> None:
    """Encode image files (or a directory of them, in name order) to H.264/H.265 video."""
    from viewfinder.media.video.export import encode_images, list_images

    files = list_images(inputs)
    with _progress(f"encode {output.name}") as advance:
        count = encode_images(files, output, fps=fps, codec=codec, crf=crf, preset=preset,
                              progress=advance)
    click.echo(f"wrote {output}: {count} frames at {fps:g} fps ({codec})")
