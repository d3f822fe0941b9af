"""``viewfinder faces SOURCE``: face boxes, keypoints and 106 landmarks on images and video.

Thin layer over :class:`viewfinder.faces.FacePipeline`: parse, run, print.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

DETECTORS = ("scrfd_500m", "scrfd_2.5g", "yunet", "ultraface")


def _det_size(_ctx: click.Context, _param: click.Parameter, value: str | None
              ) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected WxH, e.g. 640x480") from None
    return w, h


@click.command("faces")
@click.argument("source")
@click.option("--detector", default="scrfd_500m", show_default=True,
              help=f"Zoo name ({', '.join(DETECTORS)}) or an .onnx file.")
@click.option("--landmarks", type=click.Choice(["106", "none"]), default="106",
              show_default=True, help="106-point landmarks (2d106det) or none.")
@click.option("--every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Video: run the detector every N frames (sooner when a track is lost).")
@click.option("--out", type=click.Path(dir_okay=False), help="Annotated image or .mp4 video.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Results as JSON (image) or JSON lines (video); '-' for stdout.")
@click.option("--profile", is_flag=True, help="Print the call flow: time per stage per frame.")
@click.option("--threads", type=click.IntRange(min=0), default=0, help="Threads (0 = auto).")
@click.option("--provider", default="cpu", show_default=True, help="ONNX Runtime provider.")
@click.option("--backend", type=click.Choice(["ort", "openvino", "auto"]), default="auto",
              show_default=True, help="Inference backend (auto: measured per model).")
@click.option("--precision", type=click.Choice(["f32", "bf16", "fp16", "int8"]), default="f32",
              show_default=True, help="Inference precision (f32 is exact).")
@click.option("--det-size", callback=_det_size, help="Detector input WxH (default: adapt).")
@click.option("--score", "score_threshold", type=float, help="Detector score threshold.")
@click.option("--max-faces", type=click.IntRange(min=0), default=0, help="Keep the best N.")
@click.option("--min-size", type=click.FloatRange(min=0), default=0.0, help="Min face px.")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after N frames.")
@click.option("--min-cutoff", type=float, default=1.0, show_default=True,
              help="One-Euro min cutoff (Hz): lower = smoother.")
@click.option("--beta", type=float, default=0.05, show_default=True,
              help="One-Euro beta: higher = less lag on fast motion.")
@click.pass_context
def cli(ctx: click.Context, source: str, detector: str, landmarks: str, every: int,
        out: str | None, json_path: str | None, profile: bool, threads: int, provider: str,
        backend: str, precision: str, det_size: tuple[int, int] | None,
        score_threshold: float | None, max_faces: int, min_size: float,
        max_frames: int | None, min_cutoff: float, beta: float) -> None:
    """Detect faces (box, score, 5 keypoints) and 106 landmarks in SOURCE.

    SOURCE is an image, a video file, a raw .h264 stream, a folder of images or a
    camera index. Exit codes: 0 ok, 1 finished but some frames failed to decode,
    2 bad input.
    """
    from viewfinder.faces import FacePipeline, OneEuroParams
    from viewfinder.faces.io import is_image_file
    from viewfinder.fileio import check_readable

    image = is_image_file(source)
    if not source.isdigit() and not Path(source).is_dir():
        check_readable(source, "image" if image else "video")
    pipe = FacePipeline(
        detector, "2d106det" if landmarks == "106" else None, every=every, backend=backend,
        provider=provider, threads=threads, precision=precision, det_size=det_size,
        score_threshold=score_threshold, max_faces=max_faces, min_size=min_size,
        smoothing=OneEuroParams(min_cutoff=min_cutoff, beta=beta), profile=profile)
    if image:
        code = _image(pipe, source, out, json_path)
    else:
        code = _video(pipe, source, out, json_path, max_frames)
    if profile:
        _print_profile(pipe)
    ctx.exit(code)


def _image(pipe, source: str, out: str | None, json_path: str | None) -> int:
    from viewfinder.draw import save_image
    from viewfinder.errors import ConfigError
    from viewfinder.faces.io import is_image_file, read_image
    from viewfinder.fileio import atomic_write_text

    if out is not None and not is_image_file(out):
        raise ConfigError(f"--out {out}: expected an image file (.jpg, .png...) for an image")
    image = read_image(source)
    if pipe.profiler.enabled:  # profile the steady state, not first-call compiles
        pipe(image)
        pipe.profiler.reset()
    faces = pipe(image)
    record = {"source": source, "width": image.shape[1], "height": image.shape[0],
              **faces.to_dict()}
    if json_path == "-":
        click.echo(json.dumps(record))
    elif json_path:
        atomic_write_text(json_path, json.dumps(record) + "\n")
    if out:
        save_image(out, faces.draw(image))
    click.echo(f"{source}: {len(faces)} face{'s' if len(faces) != 1 else ''}", err=json_path == "-")
    return 0


def _video(pipe, source: str, out: str | None, json_path: str | None,
           max_frames: int | None) -> int:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from viewfinder.errors import ConfigError

    if out is not None and Path(out).suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise ConfigError(f"--out {out}: expected a video file (.mp4) for a video source")
    if json_path == "-":
        raise ConfigError("--json -: give a file for video results (JSON lines)")
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console,
                  transient=True) as bar:
        task = bar.add_task("frame 0")

        def progress(n: int, faces) -> None:
            bar.update(task, description=f"frame {n}: {len(faces)} faces")

        summary = pipe.run(source, out=out, json_path=json_path, max_frames=max_frames,
                           progress=progress)
    click.echo(f"{source}: {summary.frames} frames, detector on {summary.detections}, "
               f"{summary.fps:.1f} fps")
    if summary.errors:
        for index, message in summary.errors[:20]:
            click.echo(f"frame {index}: {message}", err=True)
        click.echo(f"{len(summary.errors)} corrupt or undecodable frame(s) in {source}; "
                   f"the run went on ({summary.frames} frames processed)", err=True)
        return 1
    return 0


def _print_profile(pipe) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="call flow (per frame)")
    table.add_column("stage")
    table.add_column("ms / frame", justify="right")
    table.add_column("share", justify="right")
    rows = pipe.profile_rows()
    for name, ms, share in rows:
        table.add_row(name, f"{ms:.2f}", f"{share:.0%}")
    table.add_row("total", f"{sum(r[1] for r in rows):.2f}", "100%")
    console = Console()
    console.print(table)
    for line in pipe.describe():
        click.echo(line)
