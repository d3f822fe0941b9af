"""``viewfinder faces SOURCE``: face boxes, keypoints and 106 landmarks on images and video.

Argument parsing over :func:`viewfinder.runner.run` with a
:class:`viewfinder.tasks.FacesTask`.
"""

from __future__ import annotations

import click

from viewfinder.cli._shared import (
    open_checked,
    output_options,
    run_task,
    runtime_options,
    scale_options,
    source_options,
)

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
@source_options
@click.option("--model", default="scrfd_500m", show_default=True,
              help=f"Face detector: zoo name ({', '.join(DETECTORS)}) or an .onnx file.")
@click.option("--landmarks", type=click.Choice(["106", "none"]), default="106",
              show_default=True, help="106-point landmarks (2d106det) or none.")
@click.option("--every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Video: run the detector every N frames (sooner when a track is lost).")
@output_options
@scale_options
@click.option("--profile", is_flag=True, help="Print the call flow: time per stage per frame.")
@runtime_options()
@click.option("--det-size", callback=_det_size, help="Detector input WxH (default: adapt).")
@click.option("--score", type=click.FloatRange(0, 1), help="Detector score threshold.")
@click.option("--max-faces", type=click.IntRange(min=0), default=0, help="Keep the best N.")
@click.option("--min-size", type=click.FloatRange(min=0), default=0.0, help="Min face px.")
@click.option("--min-cutoff", type=float, default=1.0, show_default=True,
              help="One-Euro min cutoff (Hz): lower = smoother.")
@click.option("--beta", type=float, default=0.05, show_default=True,
              help="One-Euro beta: higher = less lag on fast motion.")
@click.pass_context
def cli(ctx: click.Context, sources: tuple[str, ...], recursive: bool, max_frames: int | None,
        timeout: float, live: str, reconnect: int, model: str, landmarks: str, every: int,
        out: str | None, json_path: str | None, profile: bool, backend: str, provider: str, threads: int,
        precision: str, det_size: tuple[int, int] | None, score: float | None,
        max_faces: int, min_size: float, min_cutoff: float, beta: float, **scale) -> None:
    """Detect faces (box, score, 5 keypoints) and 106 landmarks in each SOURCE.

    A SOURCE is an image, a folder (-r: with subfolders), a glob, a .txt list of
    paths, a video file, a raw .h264 stream, a camera index or a URL (rtsp://...).
    Photos are independent; the frames of a video are tracked and smoothed.
    Exit codes: 0 ok, 1 finished but some inputs failed, 2 bad input.
    """
    from viewfinder.tasks import build_task

    source = open_checked(sources, out, json_path, recursive=recursive,
                          max_frames=max_frames, timeout=timeout, live=live,
                          reconnect=reconnect)
    task = build_task(
        "faces", model, landmarks="2d106det" if landmarks == "106" else None, every=every,
        backend=backend, provider=provider, threads=threads, precision=precision,
        det_size=det_size, score=score, max_faces=max_faces, min_size=min_size,
        smoothing={"min_cutoff": min_cutoff, "beta": beta}, profile=profile)
    pipe = task.pipeline
    single = source.images == 1 and not source.streams

    def say(item, faces) -> None:
        if single:
            n = len(faces)
            click.echo(f"{item.origin.path}: {n} face{'s' * (n != 1)}", err=json_path == "-")

    def note(report) -> str | None:
        if not report.frames:
            return None
        runs = getattr(report, "counters", {}).get("detector_runs", task.detector_runs)
        return f"detector ran on {runs} of {report.frames} frames (--every {every})"

    code = run_task(task, source, out, json_path, label="faces",
                    profiler=pipe.profiler if profile else None, on_result=say, note=note,
                    **scale)
    if profile:
        _print_profile(pipe, json_path == "-")
    ctx.exit(code)


def _print_profile(pipe, to_stderr: bool) -> None:
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
    console = Console(stderr=to_stderr)
    console.print(table)
    for line in pipe.describe():
        click.echo(line, err=to_stderr)
