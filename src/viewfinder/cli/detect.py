"""``viewfinder detect``: YOLO detection on an image, a folder or a video."""

from __future__ import annotations

from pathlib import Path

import click


def _classes(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@click.command("detect")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--model", default="yolov3-tiny", show_default=True,
              help="Zoo name, Darknet .cfg (weights beside it) or exported .onnx.")
@click.option("--conf", type=click.FloatRange(0, 1), default=0.25, show_default=True,
              help="Score threshold (objectness x class probability).")
@click.option("--iou", type=click.FloatRange(0, 1), default=0.45, show_default=True,
              help="NMS IoU threshold (per class).")
@click.option("--classes", help="Comma-separated class names or ids to keep, e.g. person,car.")
@click.option("--size", type=int, default=416, show_default=True,
              help="Network input size when converting Darknet files.")
@click.option("--graph", type=click.Choice(["raw", "decoded", "nms"]), default="raw",
              show_default=True, help="Decode and NMS in NumPy (raw) or inside the ONNX graph.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Annotated output: image file, directory (folder source) or .mp4.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the detections as JSON.")
@click.option("--backend", default="ort", show_default=True, help="Inference backend.")
@click.option("--provider", default="cpu", show_default=True, help="Execution provider.")
@click.option("--threads", type=int, default=0, help="Intra-op threads (0: runtime default).")
@click.option("--max-frames", type=int, help="Stop a video after N frames.")
@click.option("--precision", type=click.Choice(["f32", "int8"]), default="f32",
              show_default=True, help="int8: the model statically quantized (needs --calib).")
@click.option("--calib", type=click.Path(path_type=Path),
              help="int8: directory of calibration images (like the images to detect).")
@click.option("--calib-limit", type=click.IntRange(min=0), default=64, show_default=True,
              help="int8: calibrate on at most N images (0: all).")
@click.pass_context
def cli(ctx: click.Context, source: Path, model: str, conf: float, iou: float,
        classes: str | None, size: int, graph: str, out: Path | None, json_path: Path | None,
        backend: str, provider: str, threads: int, max_frames: int | None, precision: str,
        calib: Path | None, calib_limit: int) -> None:
    """Detect objects in SOURCE (image, folder of images, or video) with YOLO."""
    from rich.console import Console
    from rich.progress import Progress

    from viewfinder.detect.pipeline import check_source, detect_source
    from viewfinder.detect.yolo import load_yolo
    from viewfinder.detect.yolo_int8 import check_precision

    check_source(source, out)  # bad input fails before the model loads
    check_precision(precision, calib, graph)
    if calib is not None and precision == "int8":
        from viewfinder.runtime.convert.quantize import calibration_files

        calibration_files(calib, calib_limit)  # an empty or missing set: before any bar
    with Progress(console=Console(stderr=True), transient=True,
                  disable=precision == "f32") as bar:
        task = bar.add_task("quantizing", total=None)
        detector = load_yolo(
            model, size=size, graph=graph, backend=backend, provider=provider,
            threads=threads, conf=conf, iou=iou, classes=_classes(classes),
            precision=precision, calib=calib, calib_limit=calib_limit,
            progress=lambda stage, done, total: bar.update(task, description=stage,
                                                           completed=done, total=total))
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("detecting", total=None)
        result = detect_source(detector, source, out=out, json_path=json_path,
                               max_frames=max_frames,
                               progress=lambda done, total: bar.update(task, completed=done,
                                                                       total=total))
    _report(result)
    for name, message in result.failures:
        click.echo(f"failed: {name}: {message}", err=True)
    if result.failures:
        ctx.exit(1)


def _report(result) -> None:
    if result.kind == "image":
        for d in result.records[0]["detections"]:
            x1, y1, x2, y2 = d["box"]
            click.echo(f"{d['label']}: {d['score'] * 100:.0f}%  "
                       f"[{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]")
        return
    unit = "frames" if result.kind == "video" else "images"
    click.echo(f"{len(result.records)} {unit}, {result.detections} detections, "
               f"{len(result.failures)} failures")
