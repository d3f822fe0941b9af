"""``viewfinder detect``: YOLO detection on images, folders, videos, cameras and URLs.

Argument parsing over :func:`viewfinder.runner.run` with a
:class:`viewfinder.tasks.DetectTask`.
"""

from __future__ import annotations

from pathlib import Path

import click

from viewfinder.cli._shared import (
    open_checked,
    output_options,
    run_task,
    runtime_options,
    scale_options,
    source_options,
)


def _classes(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@click.command("detect")
@source_options
@click.option("--model", default="yolov3-tiny", show_default=True,
              help="Zoo name, Darknet .cfg (weights beside it) or exported .onnx.")
@click.option("--score", type=click.FloatRange(0, 1), default=0.25, show_default=True,
              help="Score threshold (objectness x class probability).")
@click.option("--iou", type=click.FloatRange(0, 1), default=0.45, show_default=True,
              help="NMS IoU threshold (per class).")
@click.option("--classes", help="Comma-separated class names or ids to keep, e.g. person,car.")
@click.option("--size", type=int, default=416, show_default=True,
              help="Network input size when converting Darknet files.")
@click.option("--graph", type=click.Choice(["raw", "decoded", "nms"]), default="raw",
              show_default=True, help="Decode and NMS in NumPy (raw) or inside the ONNX graph.")
@output_options
@scale_options
@runtime_options(("f32", "int8"))
@click.option("--calib", type=click.Path(path_type=Path),
              help="int8: directory of calibration images (like the images to detect).")
@click.option("--calib-limit", type=click.IntRange(min=0), default=64, show_default=True,
              help="int8: calibrate on at most N images (0: all).")
@click.pass_context
def cli(ctx: click.Context, sources: tuple[str, ...], recursive: bool, max_frames: int | None,
        timeout: float, live: str, reconnect: int, model: str, score: float, iou: float,
        classes: str | None, size: int, graph: str, out: str | None, json_path: str | None, backend: str, provider: str,
        threads: int, precision: str, calib: Path | None, calib_limit: int, **scale) -> None:
    """Detect objects in each SOURCE with YOLO.

    A SOURCE is an image, a folder (-r: with subfolders), a glob, a .txt list of
    paths, a video file, a raw .h264 stream, a camera index or a URL (rtsp://...).
    Exit codes: 0 ok, 1 finished but some inputs failed, 2 bad input.
    """
    from rich.console import Console
    from rich.progress import Progress

    from viewfinder.detect.yolo_int8 import check_precision
    from viewfinder.tasks import build_task

    source = open_checked(sources, out, json_path, recursive=recursive,
                          max_frames=max_frames, timeout=timeout, live=live,
                          reconnect=reconnect)
    check_precision(precision, calib, graph)
    if calib is not None and precision == "int8":
        from viewfinder.runtime.convert.quantize import calibration_files

        calibration_files(calib, calib_limit)  # an empty or missing set: before any bar
    with Progress(console=Console(stderr=True), transient=True,
                  disable=precision == "f32") as bar:
        bar_task = bar.add_task("quantizing", total=None)
        task = build_task(
            "detect", model, size=size, graph=graph, backend=backend, provider=provider,
            threads=threads, score=score, iou=iou, classes=_classes(classes),
            precision=precision, calib=calib, calib_limit=calib_limit,
            progress=lambda stage, done, total: bar.update(bar_task, description=stage,
                                                           completed=done, total=total))
    single = source.images == 1 and not source.streams

    def say(item, dets) -> None:
        if single:
            for d in dets.to_dicts():
                x1, y1, x2, y2 = d["box"]
                click.echo(f"{d['label']}: {d['score'] * 100:.0f}%  "
                           f"[{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]", err=json_path == "-")

    ctx.exit(run_task(task, source, out, json_path, label="detecting", on_result=say,
                      **scale))
