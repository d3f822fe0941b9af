"""What ``faces``, ``detect`` and ``dpm detect`` share: source, output and runtime options,
and one function that runs a task over the source with a progress bar.

The same words everywhere: ``--model``, ``--out``, ``--json``, ``--score``,
``--backend`` (default ``auto``), ``--provider``, ``--threads``, ``--precision``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

PRECISIONS = ("f32", "fp16", "bf16", "int8")
BACKENDS = ("auto", "ort", "openvino")


def source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """SOURCE... and how to read it."""
    f = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
                     show_default=True,
                     help="Seconds to wait for a camera or URL to open or send a frame.")(f)
    f = click.option("--max-frames", type=click.IntRange(min=1),
                     help="Stop each video or stream after N frames.")(f)
    f = click.option("-r", "--recursive", is_flag=True, help="Include subfolders of folders.")(f)
    return click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")(f)


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--out and --json."""
    f = click.option("--json", "json_path", metavar="FILE",
                     help="Results as JSON lines, one record per image or frame ('-': stdout).")(f)
    return click.option("--out", metavar="PATH",
                        help="Annotated output: an image file (one image), a video file (one "
                             "video or stream) or a folder (one picture per image, names "
                             "mirrored; one .mp4 per video).")(f)


def runtime_options(precisions: tuple[str, ...] = PRECISIONS) -> Callable[..., Any]:
    """--backend, --provider, --threads, --precision."""

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--precision", type=click.Choice(precisions), default="f32",
                         show_default=True, help="Inference precision (f32 is exact).")(f)
        f = click.option("--threads", type=click.IntRange(min=0), default=0,
                         help="Inference threads (0: the backend's default).")(f)
        f = click.option("--provider", default="cpu", show_default=True,
                         help="Execution provider (cpu, cuda...).")(f)
        return click.option("--backend", type=click.Choice(BACKENDS), default="auto",
                            show_default=True,
                            help="Inference backend (auto: the faster one, measured).")(f)

    return wrap


def open_checked(sources: tuple[str, ...], out: str | None, json_path: str | None, *,
                 recursive: bool = False, max_frames: int | None = None,
                 timeout: float = 10.0) -> Any:
    """The source, with every output location checked (before any model loads)."""
    from viewfinder.media.sources import open_source
    from viewfinder.sinks import check_outputs

    source = open_source(list(sources), recursive=recursive, max_frames=max_frames,
                         timeout=timeout)
    check_outputs(source, out, json_path)
    return source


def _progress_bar(live: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if not live:
        columns += [BarColumn(), MofNCompleteColumn(), TextColumn("eta"), TimeRemainingColumn()]
    else:
        columns += [TextColumn("{task.completed} frames"), TimeElapsedColumn()]
    return Progress(*columns, console=Console(stderr=True), transient=True)


def run_task(task: Any, source: Any, out: str | None, json_path: str | None, *,
             label: str = "processing", profiler: Any = None,
             on_result: Callable[[Any, Any], None] | None = None, draw: Any = None,
             note: Callable[[Any], str | None] | None = None) -> int:
    """Run ``task`` over ``source`` into ``--out`` / ``--json``, report, and return the exit
    code: 0 ok, 1 finished with failures (listed on stderr). ``draw(image, result)``
    overrides how ``--out`` pictures are drawn; ``note(report)`` adds a line to the summary.

    Raises:
        ViewfinderError: the only input failed (its own message, exit 2).
    """
    from viewfinder.runner import run
    from viewfinder.sinks import open_sinks

    sinks = open_sinks(source, out, json_path, draw)
    live = any(e.live for e in source.entries)
    with _progress_bar(live) as bar:
        bar_task = bar.add_task(label, total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(bar_task, completed=done, total=total)

        report = run(task, source, sinks, progress=progress, profiler=profiler,
                     on_result=on_result)
    return finish(report, source, to_stderr=json_path == "-",
                  note=note(report) if note is not None else None)


def finish(report: Any, source: Any, to_stderr: bool, note: str | None = None) -> int:
    """Print the failures and the summary; the exit code."""
    from viewfinder.errors import InputFileError

    if report.failures and not report.items and len(source.entries) == 1:
        raise InputFileError(report.failures[0].message)
    for failure in report.failures[:20]:
        text = failure.message
        if not text.startswith(failure.where):
            text = f"{failure.where}: {text}"
        click.echo(f"failed: {text}", err=True)
    if len(report.failures) > 20:
        click.echo(f"... and {len(report.failures) - 20} more failures", err=True)
    click.echo(report.summary(), err=to_stderr)
    if note:
        click.echo(note, err=to_stderr)
    return 1 if report.failures else 0
