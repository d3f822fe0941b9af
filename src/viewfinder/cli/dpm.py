"""``viewfinder dpm detect | show-model`` (and ``train``/``eval`` when the training part is present)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@click.group("dpm")
def cli() -> None:
    """Deformable Part Models (voc-release5): detect, show models."""


def _images(source: Path) -> list[Path]:
    from viewfinder.errors import InputFileError

    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise InputFileError(f"{source}: no images ({', '.join(_IMAGE_SUFFIXES)}) in directory")
        return files
    if not source.is_file():
        raise InputFileError(f"{source}: no such image file or directory")
    return [source]


def _records(image_id: str, dets: Any) -> list[dict[str, Any]]:
    """JSON-lines records: 0-based continuous boxes, as ``viewfinder eval voc`` reads them."""
    out = []
    for i in range(len(dets)):
        b = dets.boxes[i]
        parts = [[round(float(p[0]) - 1, 2), round(float(p[1]) - 1, 2), round(float(p[2]), 2),
                  round(float(p[3]), 2)] for p in dets.part_boxes[i] if all(p == p)]
        out.append({"image_id": image_id, "label": dets.name, "score": round(float(dets.scores[i]), 6),
                    "box": [round(float(b[0]) - 1, 2), round(float(b[1]) - 1, 2),
                            round(float(b[2]), 2), round(float(b[3]), 2)],
                    "component": int(dets.components[i]), "parts": parts})
    return out


def _check_outputs(out: Path | None, json_path: Path | None) -> None:
    from viewfinder.errors import InputFileError

    if out is not None and out.exists() and not out.is_dir():
        raise InputFileError(f"{out}: --out must be a directory")
    if json_path is not None and not json_path.parent.resolve().is_dir():
        raise InputFileError(f"{json_path}: output directory {json_path.parent} does not exist")


@cli.command("detect")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--model", "models", multiple=True, default=("VOC2007_person",), show_default=True,
              help="Model name (VOC2007_<class>, INRIA_person) or .mat path; repeatable.")
@click.option("--threshold", type=float, default=None,
              help="Score threshold (default: each model's own, tuned for high recall).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for annotated PNGs (created if missing).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write detections as JSON lines (the format 'viewfinder eval voc' reads).")
@click.option("--parts/--no-parts", default=False, help="Draw part boxes in --out pictures.")
@click.option("--nms", "nms_overlap", type=click.FloatRange(0, 1), default=0.5,
              show_default=True, help="voc-release NMS overlap.")
def detect_cmd(source: Path, models: tuple[str, ...], threshold: float | None,
               out: Path | None, json_path: Path | None, parts: bool,
               nms_overlap: float) -> int:
    """Detect objects in SOURCE (an image or a directory of images)."""
    import json
    import time

    from rich.console import Console
    from rich.progress import Progress

    from viewfinder.dpm.detect import detect
    from viewfinder.dpm.zoo import load_model
    from viewfinder.errors import ViewfinderError
    from viewfinder.fileio import atomic_write_text
    from viewfinder.media.image import read_image

    files = _images(source)
    _check_outputs(out, json_path)
    loaded = [load_model(m) for m in models]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    console = Console()
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("detecting", total=len(files))
        for path in files:
            try:
                image = read_image(path, "rgb24")
            except ViewfinderError as exc:
                failures.append((path.name, str(exc)))
                bar.advance(task)
                continue
            t0 = time.perf_counter()
            results = [detect(m, image, threshold, nms_overlap=nms_overlap) for m in loaded]
            elapsed = time.perf_counter() - t0
            for dets in results:
                records.extend(_records(path.stem, dets))
            _report(console, path, results, elapsed)
            if out is not None:
                _save_picture(out / f"{path.stem}.png", image, results, parts)
            bar.advance(task)
    if json_path is not None:
        atomic_write_text(json_path, "".join(json.dumps(r) + "\n" for r in records))
    for name, message in failures:
        click.echo(f"failed: {name}: {message}", err=True)
    return 1 if failures else 0


def _report(console: Any, path: Path, results: list[Any], elapsed: float) -> None:
    n = sum(len(d) for d in results)
    console.print(f"{path.name}: {n} detection(s) in {elapsed:.2f} s")
    for dets in results:
        for i in range(len(dets)):
            b = dets.boxes[i]
            console.print(f"  {dets.name} {dets.scores[i]:+.3f} box ({b[0]:.0f}, {b[1]:.0f}, "
                          f"{b[2]:.0f}, {b[3]:.0f}) component {int(dets.components[i])}")


def _save_picture(path: Path, image: Any, results: list[Any], parts: bool) -> None:
    import cv2

    from viewfinder.dpm.visualize import draw_detections
    from viewfinder.draw import save_image

    picture = image
    for dets in results:
        picture = cv2.cvtColor(draw_detections(picture, dets, parts=parts), cv2.COLOR_BGR2RGB)
    save_image(path, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))


@cli.command("show-model")
@click.argument("model")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG to write.")
@click.option("--all-components", is_flag=True, help="Include the mirrored components.")
@click.option("--cell", type=click.IntRange(4, 64), default=20, show_default=True,
              help="Pixels per part cell.")
def show_model_cmd(model: str, output: Path, all_components: bool, cell: int) -> None:
    """Write a picture of MODEL's filters and deformation costs (HOG glyphs)."""
    from viewfinder.dpm.visualize import model_picture
    from viewfinder.dpm.zoo import load_model
    from viewfinder.draw import save_image

    m = load_model(model)
    comps = list(range(len(m.components))) if all_components else None
    save_image(output, model_picture(m, comps, cell))
    click.echo(f"{m.describe()}\nwrote {output}")


try:
    from viewfinder.cli.dpm_train import register
except ModuleNotFoundError as exc:  # the training commands are optional
    if exc.name != "viewfinder.cli.dpm_train":
        raise
else:
    register(cli)
