"""``viewfinder models list | info NAME | fetch NAME | verify [NAME]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from viewfinder.runtime.specs import InputSpec


def _human(size: int | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "?"  # pragma: no cover


@click.group("models")
def cli() -> None:
    """The model zoo: list, describe, download and verify models."""


@cli.command("list")
@click.option("--task", default=None, help="Only models of this task (face-detection, dpm...).")
def list_cmd(task: str | None) -> None:
    """List registered models and whether they are available locally."""
    from rich.console import Console
    from rich.table import Table

    from viewfinder.runtime import zoo
    from viewfinder.runtime.fetch import find_local

    table = Table("name", "task", "size", "local", "licence", box=None)
    for spec in zoo.list_models(task):
        local = all(find_local(f) is not None for f in spec.files)
        table.add_row(spec.name, spec.task, _human(spec.size), "yes" if local else "no",
                      spec.licence)
    Console().print(table)


@cli.command("info")
@click.argument("name")
def info_cmd(name: str) -> None:
    """Everything the zoo knows about NAME: files, URLs, digests, input spec."""
    from viewfinder.runtime import zoo
    from viewfinder.runtime.fetch import find_local

    spec = zoo.get_model(name)
    click.echo(f"{spec.name}: {spec.description}")
    click.echo(f"  task: {spec.task}\n  licence: {spec.licence}")
    if spec.input is not None:
        i = spec.input
        size = f"{i.size[0]}x{i.size[1]}" if i.size else f"dynamic (default {i.image_size[0]}x"
        size += "" if i.size else f"{i.image_size[1]}, multiple of {i.multiple})"
        click.echo(f"  input: {i.name} {i.layout} {i.color} {size}, mean {i.mean}, std {i.std}, "
                   f"resize {i.resize}{_placement(i)}")
    if spec.output_layout:
        click.echo(f"  outputs: {spec.output_layout}")
    for f in spec.files:
        local = find_local(f)
        click.echo(f"  file {f.relpath} ({_human(f.size)})")
        click.echo(f"    url: {f.url or 'unknown'}" + (f" member {f.member}" if f.member else ""))
        click.echo(f"    sha256: {', '.join(f.sha256) or 'unknown'}")
        click.echo(f"    local: {local or 'not present'}")
    if spec.notes:
        click.echo(f"  notes: {spec.notes}")


def _placement(i: InputSpec) -> str:
    """Where the image goes on the input: letterbox placement and padding, crop margin."""
    resample = "" if i.interpolation == "bilinear" else f", {i.interpolation} resize"
    if i.resize == "letterbox":
        return f" ({'centred' if i.center else 'top-left'}, pad {i.pad_value:g}{resample})"
    if i.resize == "crop":
        return f" (box centre, side {i.crop_margin:g} x the longer box side{resample})"
    return f" ({resample[2:]})" if resample else ""


@cli.command("fetch")
@click.argument("name")
def fetch_cmd(name: str) -> None:
    """Find NAME locally or download it into the cache (sha256 verified)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from viewfinder.runtime import zoo

    with Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  transient=True) as bar:
        task = bar.add_task(name, total=None)
        paths = zoo.resolve_files(name, progress=lambda done, total: bar.update(
            task, completed=done, total=total))
    for fname, path in paths.items():
        click.echo(f"{fname}: {path}")


@cli.command("verify")
@click.argument("name", required=False)
@click.pass_context
def verify_cmd(ctx: click.Context, name: str | None) -> None:
    """Check size and sha256 of NAME's files (all locally present models if no NAME)."""
    from viewfinder.errors import ModelError
    from viewfinder.runtime import zoo
    from viewfinder.runtime.fetch import find_local, verify_file

    specs = [zoo.get_model(name)] if name else zoo.list_models()
    bad = 0
    for spec in specs:
        for f in spec.files:
            path = find_local(f)
            if path is None:
                if name:
                    zoo.resolve_files(name, fetch=False)  # raises the one-line error
                continue
            try:
                verify_file(path, f)
                status = "ok" if f.sha256 else "present (no published digest)"
            except ModelError as exc:
                status, bad = f"FAILED: {exc}", bad + 1
            click.echo(f"{spec.name}: {f.relpath}: {status}")
    if bad:
        ctx.exit(1)
