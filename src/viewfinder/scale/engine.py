"""One run on many processes: the process pool (default) or Ray, chosen by options.

:func:`run_scaled` is what ``viewfinder faces|detect|dpm detect --workers N
[--engine ray]`` calls instead of :func:`viewfinder.runner.run`. It returns the same
:class:`~viewfinder.runner.RunReport` (a :class:`~viewfinder.scale.merge.ScaleReport`),
and writes the same JSON lines in the same order and the same annotated files as a
serial run.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewfinder.errors import ConfigError, InputFileError
from viewfinder.media.sources import Source
from viewfinder.scale.merge import Merger, ScaleReport
from viewfinder.scale.pool import Pool
from viewfinder.scale.units import (
    Unit,
    UnitDone,
    lost_failures,
    plan_units,
    remove_strays,
    run_unit,
)

__all__ = ["ENGINES", "FORMATS", "ScaleOptions", "check_scale", "run_pool", "run_scaled"]

#: Engines: a local process pool, or Ray (``pip install 'viewfinder[ray]'``).
ENGINES = ("pool", "ray")
#: Result formats (``parquet``: Ray, into a results folder).
FORMATS = ("jsonl", "parquet")


@dataclass(frozen=True)
class ScaleOptions:
    """How a run is spread out (the CLI's ``--workers``, ``--engine``, ``--address``,
    ``--format``).

    Attributes:
        workers: Processes or actors; 0 or 1 with the pool: this process only.
            Ray: 0 means the cluster's CPUs divided by ``threads``.
        engine: One of :data:`ENGINES`.
        address: Ray cluster (``auto``, ``HOST:PORT``); None: start a local Ray.
        format: One of :data:`FORMATS`.
        threads: Threads per worker (0: the cores split evenly; Ray: 1).
        chunk: Still images per unit (0: automatic).
    """

    workers: int = 0
    engine: str = "pool"
    address: str | None = None
    format: str = "jsonl"
    threads: int = 0
    chunk: int = 0

    @property
    def active(self) -> bool:
        """Whether the run leaves this process (else the serial runner runs it)."""
        return self.engine == "ray" or self.workers > 1


def check_scale(options: ScaleOptions, source: Source, out: Any = None,
                json_path: Any = None) -> None:
    """Refuse what cannot work, before any model loads.

    Raises:
        ConfigError: an unknown engine or format, ``--address`` or ``--format parquet``
            without Ray, cameras or URLs on several workers, a results folder without Ray.
        InputFileError: a non-empty results folder, a missing parent folder.
        MissingDependencyError: ``--engine ray`` without Ray installed.
    """
    from viewfinder.scale.ray_engine import is_results_dir

    if options.engine not in ENGINES:
        raise ConfigError(f"--engine {options.engine}: expected one of {', '.join(ENGINES)}")
    if options.format not in FORMATS:
        raise ConfigError(f"--format {options.format}: expected one of {', '.join(FORMATS)}")
    if options.workers < 0:
        raise ConfigError(f"--workers {options.workers}: expected 0 or more")
    ray = options.engine == "ray"
    if options.address and not ray:
        raise ConfigError("--address: only with --engine ray")
    if options.format == "parquet" and not (ray and is_results_dir(json_path)):
        raise ConfigError("--format parquet: needs --engine ray and --json DIR/ (a folder)")
    if is_results_dir(json_path) and not ray:
        raise InputFileError(f"--json {json_path}: is a folder, expected a file (or '-'); "
                             "a folder of shards needs --engine ray")
    if options.active and source.is_live:
        raise ConfigError("--workers/--engine: cameras and URLs run in one process; "
                          "drop --workers and --engine")
    if ray:
        from viewfinder.scale.ray_compat import import_ray

        import_ray()
        if is_results_dir(json_path):
            p = Path(json_path)
            if p.is_dir() and any(p.iterdir()):
                raise InputFileError(f"--json {p}: the results folder is not empty")
            if not (p.parent if str(p.parent) else Path(".")).is_dir():
                raise InputFileError(f"--json {p}: output directory {p.parent} does not exist")


def run_scaled(task: Any, source: Source, options: ScaleOptions, *, out: Any = None,
               json_path: Any = None, draw: Any = None,
               progress: Callable[[int, int | None], None] | None = None,
               on_result: Callable[[Any, Any], None] | None = None) -> ScaleReport:
    """Run ``task`` over ``source`` with the engine ``options`` name (see the module)."""
    check_scale(options, source, out, json_path)
    if options.engine == "ray":
        from viewfinder.scale.ray_engine import run_ray

        return run_ray(task, source, workers=options.workers, threads=options.threads or 1,
                       address=options.address, out=out, json_path=json_path,
                       fmt=options.format, draw=draw, chunk=options.chunk, progress=progress,
                       on_result=on_result)
    return run_pool(task, source, workers=max(1, options.workers), threads=options.threads,
                    out=out, json_path=json_path, draw=draw, chunk=options.chunk,
                    progress=progress, on_result=on_result)


def _work(task: Any, unit: Unit, emit: Callable[[Any], None]) -> UnitDone:
    """What each pool worker runs (module level: it is pickled by name)."""
    return run_unit(task, unit, emit)


def _annotated(out: Any, source: Source, draw: Any) -> Any:
    if out is None:
        return None
    from viewfinder.sinks import AnnotatedSink

    sink = AnnotatedSink(out, source, draw)
    try:
        pickle.dumps(sink)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise ConfigError(f"--out with workers: the drawing function cannot be sent to a "
                          f"worker process ({exc}); use a module-level function") from None
    return sink


def run_pool(task: Any, source: Source, *, workers: int = 2, threads: int = 0,
             out: Any = None, json_path: Any = None, draw: Any = None, chunk: int = 0,
             progress: Callable[[int, int | None], None] | None = None,
             on_result: Callable[[Any, Any], None] | None = None) -> ScaleReport:
    """Run ``task`` over ``source`` on a local pool of ``workers`` processes.

    Args:
        task: A task from :func:`~viewfinder.tasks.build_task` (its ``spec`` is used) or
            a :class:`~viewfinder.tasks.TaskSpec`.
        source: From :func:`~viewfinder.media.sources.open_source` (files only).
        workers: Processes, each with its own model.
        threads: Threads per worker (0: the cores split evenly).
        out: Annotated output (``--out``), written by the workers.
        json_path: JSON lines (``--json``: a file or ``-``), written here in input order.
        draw: Picklable ``draw(image, result)`` for ``out``.
        chunk: Still images per unit (0: automatic).
        progress: ``progress(done, total)`` as items finish.
        on_result: Called with an image-less item and each result, in input order.

    Returns:
        The report: counts and failures as in a serial run, and what the pool did.
    """
    from viewfinder.sinks import JsonLinesSink

    spec = getattr(task, "spec", task)
    sink = _annotated(out, source, draw)
    units = plan_units(source, workers, sink=sink, chunk=chunk)
    workers = max(1, min(workers, len(units)))
    stagger = spec.name != "dpm" and spec.options.get("backend", "auto") == "auto"
    pool = Pool(_work, spec, workers, threads, stagger=stagger)
    report = ScaleReport(engine="pool", workers=workers, threads=pool.threads,
                         units=len(units))
    json_sink = JsonLinesSink(json_path) if json_path is not None else None
    merger = Merger(len(units), json_sink, report, on_result=on_result, progress=progress,
                    total=source.total() if progress is not None else None)
    t0 = time.perf_counter()
    ok = False
    events = pool.run(units, lambda unit: unit.retries)
    try:
        for kind, index, payload in events:
            if kind == "ready":
                report.startup = report.startup or time.perf_counter() - t0
            elif kind == "part":
                merger.part(index, payload)
            elif kind == "done":
                merger.end(index, payload.failures, payload.counters)
            elif kind == "retry":
                remove_strays(units[index])
                merger.retry(index)
            else:  # lost
                remove_strays(units[index], pictures=True, keep=merger.covered(index))
                merger.lost(index, lost_failures(units[index], payload))
        ok = True
    finally:
        events.close()
        if json_sink is not None:
            json_sink.close(ok)
        report.seconds = time.perf_counter() - t0
        report.retried, report.lost = pool.retried, pool.lost
        report.worker_threads = list(pool.threads_seen)
    return report
