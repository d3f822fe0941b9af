"""``viewfinder eval voc``: PASCAL VOC AP of a detections file, exactly as the devkit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from viewfinder.datasets.voc import VOCDataset
    from viewfinder.eval.detfile import DetectionFile
    from viewfinder.eval.voc import VOCResult

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@click.group("eval")
def cli() -> None:
    """Evaluate detections against ground truth."""


def _metric(year: int) -> bool:
    """VOC2007 uses 11-point AP; VOC2010 and later the area under the envelope."""
    return year < 2010


def _check_output(path: Path | None, flag: str, suffixes: tuple[str, ...] = ()) -> None:
    """An output location that cannot be written fails before any work."""
    from viewfinder.errors import ConfigError, InputFileError

    if path is None:
        return
    if path.is_dir():
        raise InputFileError(f"{path}: {flag} is a directory, expected a file name")
    if not path.resolve().parent.is_dir():
        raise InputFileError(f"{path}: {flag}'s directory {path.parent} does not exist")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{path}: {flag} writes an image: expected a name ending in "
                          f"{', '.join(suffixes)}")


def _classes(text: str | None, dataset: VOCDataset, found: DetectionFile) -> list[str]:
    """The classes to score: ``--classes`` (each must be a class of the set) or those
    the detections name."""
    from viewfinder.errors import ConfigError

    if not text:
        return sorted({r.label for r in found.records})
    names = [c.strip() for c in text.split(",") if c.strip()]
    known = dataset.classes
    unknown = [c for c in names if c not in known]
    if unknown or not names:
        what = f"unknown class {unknown[0]!r}" if unknown else "no class given"
        raise ConfigError(f"--classes {text}: {what} (the {dataset.split} set of "
                          f"{dataset.root} has: {', '.join(known)})")
    return names


def _warnings(dataset: VOCDataset, found: DetectionFile, names: list[str]) -> list[str]:
    """What the user should know about the detections: coverage, classes the set lacks."""
    lines = []
    covered = len(found.images & set(dataset.ids))
    if covered < len(dataset):
        lines.append(f"warning: detections cover {covered} of the {len(dataset)} images of "
                     f"{dataset.split}; the others count as images without detections")
    known = set(dataset.classes)
    missing = sorted(n for n in names if n not in known)
    if missing:
        lines.append(f"warning: {', '.join(missing)}: not a class of the {dataset.split} set "
                     f"(AP n/a); its classes: {', '.join(dataset.classes)}")
    return lines


def _nan_to_none(value: float) -> float | None:
    return None if value != value else value


def _payload(result: VOCResult, metric: str, split: str, covered: int, total: int
             ) -> dict[str, Any]:
    return {"metric": metric, "split": split, "mAP": _nan_to_none(result.mean_ap),
            "images": total, "images_covered": covered,
            "classes": {c.name: {"ap": _nan_to_none(c.ap), "objects": c.npos,
                                 "detections": c.ndet} for c in result.classes}}


@cli.command("voc")
@click.option("--detections", "det_path", type=click.Path(path_type=Path), required=True,
              help="JSON lines (one record per image, as detect and dpm detect write, or one "
                   "detection per line; '-' reads them from stdin), devkit "
                   "comp4_det_<split>_<class>.txt, or a directory of them.")
@click.option("--voc", "voc_dir", type=click.Path(path_type=Path), required=True,
              help="VOC set directory (Annotations, ImageSets) or a VOCdevkit with --year.")
@click.option("--year", type=int, default=2007, show_default=True,
              help="Devkit year: 2007 = 11-point AP, 2010+ = area under the PR envelope.")
@click.option("--split", default="test", show_default=True, help="ImageSets/Main/<split>.txt.")
@click.option("--classes", help="Comma-separated classes (default: those in the detections).")
@click.option("--pr-curve", "pr_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the precision/recall curves as an image (.png, .jpg...).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write per-class AP and mAP as JSON (NaN AP as null).")
def voc_cmd(det_path: Path, voc_dir: Path, year: int, split: str, classes: str | None,
            pr_path: Path | None, json_path: Path | None) -> None:
    """AP per class and mAP of DETECTIONS on a PASCAL VOC split."""
    import json

    from rich.console import Console
    from rich.table import Table

    from viewfinder.datasets.voc import VOCDataset
    from viewfinder.eval.voc import VOCEvaluator
    from viewfinder.fileio import atomic_write_bytes, atomic_write_text

    _check_output(pr_path, "--pr-curve", _IMAGE_SUFFIXES)
    _check_output(json_path, "--json")
    dataset = VOCDataset(voc_dir, split, year=year)
    found = _read(det_path)
    names = _classes(classes, dataset, found)
    evaluator = VOCEvaluator(dataset, classes=names, use_07_metric=_metric(year))
    for r in found.records:
        evaluator.add_devkit(r.label, r.image_id, r.score, r.box)
    outside = sorted(found.images - set(dataset.ids))
    if outside:
        from viewfinder.errors import DatasetError

        raise DatasetError(f"{det_path}: image {outside[0]} is not in the evaluated set "
                           f"({dataset.split} of {dataset.root}, {len(dataset)} images)")
    result = evaluator.evaluate()
    metric = "VOC2007 11-point" if _metric(year) else "VOC2010+ area"
    png = _pr_bytes(pr_path, result, split) if pr_path is not None else None
    for line in _warnings(dataset, found, names):
        click.echo(line, err=True)
    table = Table("class", "AP", "objects", "detections", box=None)
    for c in result.classes:
        table.add_row(c.name, "n/a" if c.ap != c.ap else f"{c.ap:.4f}", str(c.npos), str(c.ndet))
    table.add_row("mAP", "n/a" if result.mean_ap != result.mean_ap else f"{result.mean_ap:.4f}",
                  "", "")
    console = Console()
    console.print(f"{dataset.root} {split}: {len(dataset)} images, {metric} AP")
    console.print(table)
    if png is not None and pr_path is not None:
        atomic_write_bytes(pr_path, png)
    if json_path is not None:
        covered = len(found.images & set(dataset.ids))
        payload = _payload(result, metric, split, covered, len(dataset))
        atomic_write_text(json_path, json.dumps(payload, indent=2) + "\n")


def _read(det_path: Path) -> DetectionFile:
    """The detections file, or JSON lines on stdin for ``-`` (``detect --json - | eval``)."""
    from viewfinder.eval.detfile import parse_detection_text, read_detection_file

    if str(det_path) == "-":
        import sys

        return parse_detection_text(sys.stdin.read(), "<stdin>")
    return read_detection_file(det_path)


def _pr_bytes(path: Path, result: VOCResult, split: str) -> bytes:
    """The PR-curve image, encoded before anything is written."""
    import cv2

    from viewfinder.errors import EncodeError
    from viewfinder.eval.plot import pr_curve_image

    title = f"{split}, mAP {result.mean_ap:.3f}"
    ok, buf = cv2.imencode(path.suffix.lower(), pr_curve_image(result, title=title))
    if not ok:
        raise EncodeError(f"{path}: cannot encode the PR curve as {path.suffix}")
    return buf.tobytes()
