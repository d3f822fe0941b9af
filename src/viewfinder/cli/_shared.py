"""What ``faces``, ``detect`` and ``dpm detect`` share: source, output and runtime options,
and one function that runs a task over the source with a progress bar.

The same words everywhere: ``--model``, ``--out``, ``--json``, ``--score``,
``--backend`` (default ``auto``), ``--provider``, ``--threads``, ``--precision``;
``--workers``, ``--engine``, ``--address``, ``--format`` spread a run over processes
or a Ray cluster (:mod:`viewfinder.scale`, docs/scale.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

PRECISIONS = ("f32", "fp16", "bf16", "int8")
BACKENDS = ("auto", "ort", "openvino")


def source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """SOURCE... and how to read it."""
    f = click.option("--reconnect", type=click.IntRange(min=0), default=5, show_default=True,
                     help="Cameras and URLs: reconnect attempts per outage (0: none).")(f)
    f = click.option("--live", "live", type=click.Choice(["latest", "all"]), default="latest",
                     show_default=True,
                     help="Cameras and URLs: process the newest frame and drop the ones the "
                          "model had no time for (latest: bounded latency), or every frame.")(f)
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


def _scale_meta(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep the scale options where :func:`open_checked` finds them."""
    ctx.meta.setdefault("viewfinder.scale", {})[str(param.name)] = value
    return value


def engine_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--workers, --engine, --address (passed on as ``workers``, ``engine``, ``address``).

    Also for the commands that spread their own work (``dpm train``, ``dpm eval``)."""
    f = click.option("--address", metavar="auto|HOST:PORT", callback=_scale_meta,
                     help="--engine ray: the cluster to join (default: start a local one).")(f)
    f = click.option("--engine", type=click.Choice(("pool", "ray")), default="pool",
                     show_default=True, callback=_scale_meta,
                     help="pool: local worker processes; ray: a Ray cluster (Ray "
                          "actors; pip install 'viewfinder[ray]').")(f)
    return click.option("--workers", type=click.IntRange(min=0), default=0,
                        callback=_scale_meta,
                        help="Worker processes (ray: actors), one model each, the cores "
                             "split between them (0: this process; ray: all CPUs).")(f)


def scale_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`engine_options` and --format (passed on as ``fmt``: hand them all to
    :func:`run_task` as ``**kwargs``)."""
    f = click.option("--format", "fmt", type=click.Choice(("jsonl", "parquet")),
                     default="jsonl", show_default=True, callback=_scale_meta,
                     help="Results format; parquet needs --engine ray and --json DIR/.")(f)
    return engine_options(f)


def _scale_settings(threads: int = 0) -> Any:
    """The current command's scale options (None when it has none or all are defaults)."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta.get("viewfinder.scale") if ctx is not None else None
    if not meta or (meta.get("workers", 0) <= 1 and meta.get("engine", "pool") == "pool"
                    and not meta.get("address") and meta.get("fmt", "jsonl") == "jsonl"):
        return None  # serial, as without the options (the engines are not even loaded)
    from viewfinder.scale import ScaleOptions

    return ScaleOptions(meta.get("workers") or 0, meta.get("engine") or "pool",
                        meta.get("address"), meta.get("fmt") or "jsonl", threads)


def open_checked(sources: tuple[str, ...], out: str | None, json_path: str | None, *,
                 recursive: bool = False, max_frames: int | None = None,
                 timeout: float = 10.0, live: str = "latest", reconnect: int = 5) -> Any:
    """The source, with every output location checked (before any model loads)."""
    from viewfinder.media.sources import open_source
    from viewfinder.sinks import check_outputs

    source = open_source(list(sources), recursive=recursive, max_frames=max_frames,
                         timeout=timeout, live=live, reconnect=reconnect)
    scale = _scale_settings()
    if scale is not None:
        from viewfinder.scale import check_scale
        from viewfinder.scale.ray_engine import is_results_dir

        check_scale(scale, source, out, json_path)
        if is_results_dir(json_path):  # a folder of shards (Ray), checked just above
            json_path = None
    check_outputs(source, out, json_path)
    return source


class _NoBar:
    """What a progress bar does when stderr is no terminal: nothing (and rich, 65 ms
    to import, is not loaded)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def _progress_bar(live: bool) -> Any:
    import sys

    if not sys.stderr.isatty():
        return _NoBar()
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
             note: Callable[[Any], str | None] | None = None, workers: int = 0,
             engine: str = "pool", address: str | None = None, fmt: str = "jsonl") -> int:
    """Run ``task`` over ``source`` into ``--out`` / ``--json``, report, and return the exit
    code: 0 ok, 1 finished with failures (listed on stderr). ``draw(image, result)``
    overrides how ``--out`` pictures are drawn; ``note(report)`` adds a line to the summary.
    ``workers``, ``engine``, ``address``, ``fmt`` (:func:`scale_options`) run it on worker
    processes or Ray (:func:`viewfinder.scale.run_scaled`): the same outputs.

    Raises:
        ViewfinderError: the only input failed (its own message, exit 2).
    """
    if workers > 1 or engine != "pool":  # the engines load only when asked for
        from viewfinder.scale import ScaleOptions

        spec = getattr(task, "spec", None)
        threads = int(spec.options.get("threads") or 0) if spec is not None else 0
        scale = ScaleOptions(workers, engine, address, fmt, threads)
        return _run_scaled(task, source, out, json_path, scale, label=label,
                           profiler=profiler, on_result=on_result, draw=draw, note=note)
    from viewfinder.runner import run
    from viewfinder.sinks import open_sinks

    sinks = open_sinks(source, out, json_path, draw)
    live = any(e.live for e in source.entries)
    with _progress_bar(live) as bar:
        bar_task = bar.add_task(label, total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(bar_task, completed=done, total=total)

        def status(report: Any) -> None:
            if report.figures:
                bar.update(bar_task, description=_live_line(report))

        report = run(task, source, sinks, progress=progress, profiler=profiler,
                     on_result=on_result, status=status if live else None)
    return finish(report, source, to_stderr=json_path == "-",
                  note=note(report) if note is not None else None)


def _run_scaled(task: Any, source: Any, out: str | None, json_path: str | None, scale: Any, *,
                label: str, profiler: Any, on_result: Any, draw: Any, note: Any) -> int:
    """:func:`run_task` on the engine ``scale`` names."""
    from viewfinder.errors import ConfigError
    from viewfinder.scale import run_scaled

    if profiler is not None:
        raise ConfigError("--profile times one process: drop --workers / --engine")
    with _progress_bar(False) as bar:
        bar_task = bar.add_task(f"{label} ({scale.engine})", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(bar_task, completed=done, total=total)

        report = run_scaled(task, source, scale, out=out, json_path=json_path, draw=draw,
                            progress=progress, on_result=on_result)
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
    if source.is_live or len(report.figures) > 1:
        for stream, fig in report.figures.items():
            click.echo(f"  {stream}: {fig.summary()}", err=to_stderr)
    return 1 if report.failures else 0


def _live_line(report: Any) -> str:
    """The progress line of a live run: fps out, drops, latency p99 over all streams."""
    figs = list(report.figures.values())
    fps = sum(f.fps_out for f in figs)
    lat = max((f.latency_ms(99) for f in figs if f.latencies), default=float("nan"))
    return f"{len(figs)} stream(s): {fps:.1f} fps out, p99 {lat:.0f} ms"
