"""``viewfinder dpm detect | show-model`` (and ``train``/``eval`` when the training part is present)."""

from __future__ import annotations

from pathlib import Path

import click

from viewfinder.cli._shared import (
    open_checked,
    output_options,
    run_task,
    scale_options,
    source_options,
)


@click.group("dpm")
def cli() -> None:
    """Deformable Part Models (voc-release5): detect, show models."""


@cli.command("detect")
@source_options
@click.option("--model", "models", multiple=True, default=("VOC2007_person",), show_default=True,
              help="Model name (VOC2007_<class>, INRIA_person) or .mat path; repeatable.")
@click.option("--score", type=float, default=None,
              help="Score threshold (default: each model's own, tuned for high recall).")
@output_options
@scale_options
@click.option("--parts/--no-parts", default=False, help="Draw part boxes in --out pictures.")
@click.option("--nms", "nms_overlap", type=click.FloatRange(0, 1), default=0.5,
              show_default=True, help="voc-release NMS overlap.")
@click.pass_context
def detect_cmd(ctx: click.Context, sources: tuple[str, ...], recursive: bool,
               max_frames: int | None, timeout: float, live: str, reconnect: int,
               models: tuple[str, ...], score: float | None, out: str | None, json_path: str | None, parts: bool,
               nms_overlap: float, **scale) -> None:
    """Detect objects in each SOURCE (images, folders, globs, lists, videos...).

    Records are JSON lines, one per image, that 'viewfinder eval voc' reads.
    Exit codes: 0 ok, 1 finished but some inputs failed, 2 bad input.
    """
    from viewfinder.tasks import build_task

    source = open_checked(sources, out, json_path, recursive=recursive,
                          max_frames=max_frames, timeout=timeout, live=live,
                          reconnect=reconnect)
    task = build_task("dpm", list(models), score=score, nms=nms_overlap)

    def say(item, dets) -> None:
        click.echo(f"{item.origin.path or item.origin.image_id}: {len(dets)} detection(s)",
                   err=json_path == "-")

    draw = _draw_parts if parts else None  # a module function: workers unpickle it
    ctx.exit(run_task(task, source, out, json_path, label="detecting", on_result=say,
                      draw=draw, **scale))


def _draw_parts(image, dets):
    return dets.draw(image, parts=True)


@cli.command("show-model")
@click.argument("model")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG to write.")
@click.option("--all-components", is_flag=True, help="Include the mirrored components.")
@click.option("--cell", type=click.IntRange(4, 64), default=20, show_default=True,
              help="Pixels per part cell.")
def show_model_cmd(model: str, out: Path, all_components: bool, cell: int) -> None:
    """Write a picture of MODEL's filters and deformation costs (HOG glyphs)."""
    from viewfinder.dpm.visualize import model_picture
    from viewfinder.dpm.zoo import load_model
    from viewfinder.draw import save_image

    m = load_model(model)
    comps = list(range(len(m.components))) if all_components else None
    save_image(out, model_picture(m, comps, cell))
    click.echo(f"{m.describe()}\nwrote {out}")


try:
    from viewfinder.cli.dpm_train import register
except ModuleNotFoundError as exc:  # the training commands are optional
    if exc.name != "viewfinder.cli.dpm_train":
        raise
else:
    register(cli)
