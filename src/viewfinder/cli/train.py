"""``viewfinder train``: training recipes (``yolo``)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("train")
def cli() -> None:
    """Train models (needs the 'train' extra: torch)."""


@cli.command("yolo")
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="VOC-layout data set (Annotations/, JPEGImages/, ImageSets/Main/).")
@click.option("--cfg", required=True, type=click.Path(path_type=Path), help="Darknet .cfg.")
@click.option("--weights", type=click.Path(path_type=Path), help="Darknet .weights to start from.")
@click.option("--names", type=click.Path(path_type=Path),
              help="Class names file (default: coco.names beside the cfg).")
@click.option("--epochs", type=click.IntRange(min=1), required=True)
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="SGD learning rate.")
@click.option("--warmup", type=click.IntRange(min=0), default=100, show_default=True,
              help="Steps of linear learning-rate warm-up.")
@click.option("--size", type=int, help="Input size (multiple of 32; default: the cfg's).")
@click.option("--amp", type=click.Choice(["f32", "fp16", "bf16", "fp32"]), default="f32",
              show_default=True, help="torch.autocast precision of the forward pass.")
@click.option("--loss-scale", help="none, static:<scale> (e.g. static:1024) or dynamic.")
@click.option("--init-scale", type=float, default=65536.0, show_default=True)
@click.option("--growth", type=float, default=2.0, show_default=True)
@click.option("--backoff", type=float, default=0.5, show_default=True)
@click.option("--interval", type=int, default=2000, show_default=True,
              help="Good steps before a dynamic scale grows.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda[:i] or npu[:i].")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/yolo"),
              show_default=True, help="Checkpoints and final weights go here.")
@click.option("--resume", type=click.Path(path_type=Path), help="Checkpoint (last.pt) to resume.")
@click.option("--max-iter", type=int, help="Stop after N steps (default: epochs x batches).")
@click.option("--no-eval", is_flag=True, help="Skip the VOC AP evaluation on the test split.")
def yolo(no_eval: bool, **kw) -> None:
    """Train a Darknet YOLO on a VOC data set; prints loss and loss scale every step."""
    from viewfinder.detect.train.recipe import YoloTrainConfig, train_yolo

    config = YoloTrainConfig(**kw, eval_split=None if no_eval else "test")

    def show(m: dict) -> None:
        flag = "  OVERFLOW: step skipped" if m["overflow"] else ""
        click.echo(f"iter {m['iter']:5d}  epoch {m['epoch']}  loss {m['loss']:9.4f}  "
                   f"scale {m['scale']:g}  lr {m['lr']:.2e}{flag}")

    result = train_yolo(config, progress=show)
    click.echo(f"done: {len(result.history)} steps, {result.overflows} overflowed steps skipped; "
               f"weights {result.weights}, checkpoint {result.checkpoint}")
    if result.metrics:
        aps = {k[3:]: v for k, v in result.metrics.items() if k.startswith("AP/")}
        click.echo(f"VOC07 mAP over {len(aps)} classes: {result.metrics['mAP']:.4f}"
                   + (f"  (person AP {aps['person']:.4f})" if "person" in aps else ""))
        click.echo(f"metrics: {result.metrics_path}")
