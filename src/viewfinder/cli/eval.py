"""``viewfinder eval voc``: PASCAL VOC AP of a detections file, exactly as the devkit."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("eval")
def cli() -> None:
    """Evaluate detections against ground truth."""


def _metric(year: int) -> bool:
    """VOC2007 uses 11-point AP; VOC2010 and later the area under the envelope."""
    return year < 2010


@cli.command("voc")
@click.option("--detections", "det_path", type=click.Path(path_type=Path), required=True,
              help="JSON-lines file, devkit comp4_det_<split>_<class>.txt, or a directory of them.")
@click.option("--voc", "voc_dir", type=click.Path(path_type=Path), required=True,
              help="VOC set directory (Annotations, ImageSets) or a VOCdevkit with --year.")
@click.option("--year", type=int, default=2007, show_default=True,
              help="Devkit year: 2007 = 11-point AP, 2010+ = area under the PR envelope.")
@click.option("--split", default="test", show_default=True, help="ImageSets/Main/<split>.txt.")
@click.option("--classes", help="Comma-separated classes (default: those in the detections).")
@click.option("--pr-curve", "pr_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the precision/recall curves as PNG.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write per-class AP and mAP as JSON.")
def voc_cmd(det_path: Path, voc_dir: Path, year: int, split: str, classes: str | None,
            pr_path: Path | None, json_path: Path | None) -> None:
    """AP per class and mAP of DETECTIONS on a PASCAL VOC split."""
    import json

    from rich.console import Console
    from rich.table import Table

    from viewfinder.datasets.voc import VOCDataset
    from viewfinder.eval.detfile import read_detections
    from viewfinder.eval.voc import VOCEvaluator
    from viewfinder.fileio import atomic_write_text

    dataset = VOCDataset(voc_dir, split, year=year)
    records = read_detections(det_path)
    names = ([c.strip() for c in classes.split(",") if c.strip()] if classes
             else sorted({r.label for r in records}))
    evaluator = VOCEvaluator(dataset, classes=names, use_07_metric=_metric(year))
    for r in records:
        evaluator.add_devkit(r.label, r.image_id, r.score, r.box)
    result = evaluator.evaluate()
    table = Table("class", "AP", "objects", "detections", box=None)
    for c in result.classes:
        table.add_row(c.name, "n/a" if c.ap != c.ap else f"{c.ap:.4f}", str(c.npos), str(c.ndet))
    metric = "VOC2007 11-point" if _metric(year) else "VOC2010+ area"
    table.add_row("mAP", f"{result.mean_ap:.4f}", "", "")
    console = Console()
    console.print(f"{dataset.root} {split}: {len(dataset)} images, {metric} AP")
    console.print(table)
    if pr_path is not None:
        from viewfinder.draw import save_image
        from viewfinder.eval.plot import pr_curve_image

        save_image(pr_path, pr_curve_image(result, title=f"{split}, mAP {result.mean_ap:.3f}"))
    if json_path is not None:
        payload = {"metric": metric, "split": split, "mAP": result.mean_ap,
                   "classes": {c.name: {"ap": c.ap, "objects": c.npos, "detections": c.ndet}
                               for c in result.classes}}
        atomic_write_text(json_path, json.dumps(payload, indent=2, allow_nan=True) + "\n")
