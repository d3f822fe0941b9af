"""``--engine ray``: the units as a Ray dataset, ``map_batches`` over an actor pool.

The driver cuts the source into units (:func:`~viewfinder.scale.units.plan_units`),
one per dataset block, and maps them through a fixed pool of actors, each of which
builds the task once in its constructor from the :class:`~viewfinder.tasks.TaskSpec`
(threads pinned, as in the process pool) and runs a unit per call with the serial
runner. Results come back one of two ways:

- ``--json FILE`` (or ``-``): every unit's ``(origin, detections)`` records come back
  to the driver, which writes them in input order through the same
  :class:`~viewfinder.scale.merge.Merger` as the process pool: the same bytes as a
  serial run;
- ``--json DIR`` (a folder, or a path ending in ``/``): each actor writes its units'
  records as shards, ``DIR/part-000042.jsonl`` (``--format parquet``:
  ``part-000042.parquet``), named by unit, so the shards in name order are the
  serial file; only failures and counters travel to the driver. The folder appears
  when the run has finished (it is written as ``.DIR.partial-...`` beside it).

A unit whose actor died is retried once by Ray (``max_task_retries=1``); a unit that
fails again is skipped by Ray Data (``max_errored_blocks``) and reported as failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.errors import ConfigError, InputFileError
from viewfinder.scale import ray_compat
from viewfinder.scale.merge import Merger, ScaleReport
from viewfinder.scale.pool import BuildSpec, portable
from viewfinder.scale.threads import pin_threads, thread_report
from viewfinder.scale.units import Unit, lost_failures, plan_units, run_unit
from viewfinder.sinks import JsonLinesSink, make_record

__all__ = ["is_results_dir", "run_ray", "write_parquet"]

log = logging.getLogger(__name__)


def is_results_dir(path: str | os.PathLike[str] | None) -> bool:
    """Whether ``--json PATH`` asks for sharded results: a folder, or ends with ``/``."""
    if path is None or str(path) == "-":
        return False
    return Path(path).is_dir() or str(path).endswith(("/", os.sep))


class UnitActor:
    """A Ray actor: the task built once, then one unit per row of each batch.

    Args:
        spec: The :class:`~viewfinder.tasks.TaskSpec`.
        threads: Threads of this actor (its ``num_cpus``).
        shards: Folder to write each unit's records to; None: return them.
        fmt: ``"jsonl"`` or ``"parquet"`` (shards only).
    """

    def __init__(self, spec: Any, threads: int, shards: str | None, fmt: str) -> None:
        t0 = time.perf_counter()
        pin_threads(threads)
        self.task = BuildSpec(spec, threads)()
        pin_threads(threads)
        self.build_s = time.perf_counter() - t0
        self.threads: dict[str, Any] | None = None
        self.shards, self.fmt = shards, fmt

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{"index", "unit"}`` rows in, ``{"index", "payload"}`` rows out."""
        indexes, payloads = [], []
        for index, blob in zip(batch["index"], batch["unit"], strict=True):
            unit: Unit = pickle.loads(blob)
            records: list[Any] = []
            try:
                done = run_unit(self.task, unit, records.extend)
            except Exception as exc:  # a bug, not a lost actor: the driver raises it
                indexes.append(int(index))
                payloads.append(pickle.dumps(portable(exc)))
                continue
            counts = None
            if self.shards is not None:
                _write_shard(Path(self.shards), int(index), records, self.fmt)
                counts, records = _counts(records), []
            if self.threads is None:  # once its sessions have run (they compile lazily)
                self.threads = {**thread_report(self.task), "build_s": self.build_s}
            indexes.append(int(index))
            payloads.append(pickle.dumps((records, counts, done, self.threads)))
        out = np.empty(len(payloads), dtype=object)
        out[:] = payloads
        return {"index": np.asarray(indexes, dtype=np.int64), "payload": out}


def _counts(records: list[Any]) -> dict[str, Any]:
    """What the report counts of records that stay in a shard."""
    streams: dict[str, int] = {}
    for origin, _ in records:
        if origin.stream is not None:
            streams[origin.stream] = streams.get(origin.stream, 0) + 1
    return {"images": sum(o.stream is None for o, _ in records),
            "frames": sum(streams.values()), "streams": streams,
            "detections": sum(len(r) for _, r in records)}


def _add(report: ScaleReport, counts: dict[str, Any]) -> None:
    report.images += counts["images"]
    report.frames += counts["frames"]
    report.detections += counts["detections"]
    for stream, n in counts["streams"].items():
        report.streams[stream] = report.streams.get(stream, 0) + n


def _write_shard(folder: Path, index: int, records: list[Any], fmt: str) -> None:
    if not records:
        return
    if fmt == "parquet":
        write_parquet(folder / f"part-{index:06d}.parquet", records)
        return
    sink = JsonLinesSink(folder / f"part-{index:06d}.jsonl")
    ok = False
    try:
        for origin, result in records:
            sink.write_record(make_record(origin, result))
        ok = True
    finally:
        sink.close(ok)


def write_parquet(path: Path, records: list[Any]) -> None:
    """Records as one Parquet file (atomically): the origin columns, ``count``,
    ``labels``, ``scores``, ``boxes``, and ``detections`` (the JSON lines' list, as text,
    with every extra: keypoints, landmarks, track ids, parts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from viewfinder.fileio import atomic_path

    schema = pa.schema([("source", pa.string()), ("path", pa.string()),
                        ("image_id", pa.string()), ("frame", pa.int64()),
                        ("time", pa.float64()), ("width", pa.int64()), ("height", pa.int64()),
                        ("count", pa.int64()), ("labels", pa.list_(pa.string())),
                        ("scores", pa.list_(pa.float64())),
                        ("boxes", pa.list_(pa.list_(pa.float64()))),
                        ("detections", pa.string())])
    rows = []
    for origin, result in records:
        rec = make_record(origin, result)
        dets = rec.pop("detections")
        rows.append({**{k: rec[k] for k in schema.names[:7]}, "count": len(dets),
                     "labels": [d["label"] for d in dets], "scores": [d["score"] for d in dets],
                     "boxes": [d["box"] for d in dets],
                     "detections": json.dumps(dets, separators=(",", ":"))})
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)


@contextlib.contextmanager
def _results_dir(path: str | None) -> Any:
    """A temporary folder beside ``path``, moved onto it when the run ends well."""
    if path is None:
        yield None
        return
    target = Path(path)
    if target.exists() and any(target.iterdir()):
        raise InputFileError(f"--json {target}: the results folder is not empty")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise InputFileError(f"--json {target}: output directory {parent} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=parent))
    try:
        yield tmp
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def run_ray(task: Any, source: Any, *, workers: int = 0, threads: int = 1,
            address: str | None = None, out: str | None = None, json_path: str | None = None,
            fmt: str = "jsonl", draw: Any = None, chunk: int = 0,
            progress: Callable[[int, int | None], None] | None = None,
            on_result: Callable[[Any, Any], None] | None = None) -> ScaleReport:
    """Run ``task`` (or its spec) over ``source`` on Ray (see the module docstring).

    Args:
        task: A task from :func:`~viewfinder.tasks.build_task` or a ``TaskSpec``.
        source: From :func:`~viewfinder.media.sources.open_source`.
        workers: Actors (0: the cluster's CPUs / ``threads``).
        threads: Threads (and Ray CPUs) per actor.
        address: ``auto``, ``HOST:PORT`` or ``ray://...``; None starts a local Ray.
        out: Annotated output (written by the actors: a path they can all reach).
        json_path: A file or ``-`` (ordered, through the driver) or a folder (shards).
        fmt: ``"jsonl"`` or ``"parquet"`` (a folder only).
        draw: Picklable ``draw(image, result)`` for ``out``.
        chunk: Still images per unit (0: up to 32, at least 4 units per actor).
        progress: ``progress(done, total)`` as units finish.
        on_result: Called with an image-less item and each result, in input order.

    Raises:
        ConfigError: parquet without a results folder.
        MissingDependencyError: Ray is not installed.
    """
    from viewfinder.sinks import AnnotatedSink

    sharded = is_results_dir(json_path)
    if fmt == "parquet" and not sharded:
        raise ConfigError("--format parquet: give --json a folder (DIR/ or an existing one)")
    spec = getattr(task, "spec", task)
    t0 = time.perf_counter()
    started = ray_compat.init(address, workers * threads if workers else None)
    report = ScaleReport(engine="ray", threads=threads, startup=time.perf_counter() - t0)
    ok = False
    json_sink = JsonLinesSink(json_path) if json_path is not None and not sharded else None
    try:
        actors = workers or max(1, ray_compat.cluster_cpus() // threads)
        sink = AnnotatedSink(out, source, draw) if out is not None else None
        units = plan_units(source, actors, sink=sink, chunk=chunk or _chunk(source, actors))
        report.workers, report.units = min(actors, len(units)), len(units)
        total = source.total() if progress is not None else None
        merger = Merger(len(units), json_sink, report, progress=progress, total=total,
                        on_result=on_result)
        with _results_dir(json_path if sharded else None) as shards:
            _execute(units, spec, report, merger, shards, fmt)
        ok = True
    finally:
        if json_sink is not None:
            json_sink.close(ok)
        if started:
            ray_compat.import_ray().shutdown()
        report.seconds = time.perf_counter() - t0
    return report


def _chunk(source: Any, actors: int) -> int:
    return max(1, min(32, source.images // max(1, 4 * actors)))


def _execute(units: list[Unit], spec: Any, report: ScaleReport, merger: Merger,
             shards: Path | None, fmt: str) -> None:
    """Map the units through the actor pool and merge what comes back."""
    ray_compat.data_context()
    rows = [{"index": u.uid, "unit": pickle.dumps(u)} for u in units]
    ds = ray_compat.from_items(rows, len(rows))
    mapped = ray_compat.map_batches(
        ds, UnitActor, batch_size=1, batch_format="numpy", num_cpus=report.threads,
        fn_constructor_args=(spec, report.threads, None if shards is None else str(shards),
                             fmt), actors=report.workers, retries=1)
    seen: set[int] = set()
    pids: set[int] = set()
    for row in mapped.iter_rows():
        index = int(row["index"])
        payload = pickle.loads(row["payload"])
        if isinstance(payload, BaseException):
            raise payload
        records, counts, done, threads = payload
        if counts is not None:
            _add(report, counts)
        if threads["pid"] not in pids:
            pids.add(threads["pid"])
            report.worker_threads.append(threads)
        seen.add(index)
        merger.part(index, records)
        merger.end(index, done.failures, done.counters)
    for index in sorted(set(range(len(units))) - seen):
        report.lost += 1
        merger.lost(index, lost_failures(units[index], "its Ray task failed after a retry"))
