"""Work units: what one worker runs at a time, and how a worker runs one.

A unit is a small chunk of still images, or one whole video (a tracker is
sequential, so a video is never split). :func:`plan_units` cuts a
:class:`~viewfinder.media.sources.Source` into units in input order;
:func:`run_unit` runs one inside a worker with the serial runner
(:func:`viewfinder.runner.run`) over the unit's part of the source, so a unit
gives exactly what the same inputs give in a serial run: the same records, the
same failures, the same annotated files (written by the worker through its part
of the run's :class:`~viewfinder.sinks.AnnotatedSink`).

The records go back to the parent as ``(Origin, Detections)`` pairs (both
picklable), in batches while a video runs; the parent writes the JSON lines in
input order (:mod:`viewfinder.scale.merge`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viewfinder.errors import ConfigError
from viewfinder.media.sources import Failure, Item, Origin, Source
from viewfinder.runner import run
from viewfinder.structures import Detections

__all__ = ["Unit", "UnitDone", "lost_failures", "plan_units", "remove_strays", "run_unit"]

#: Records a worker sends at once while a video runs (and at most this often, seconds).
PART_RECORDS, PART_SECONDS = 32, 0.5


@dataclass(frozen=True)
class Unit:
    """One unit of work.

    Attributes:
        uid: Position in the run (units are written in this order).
        source: The run's source cut down to this unit's entries (same options).
        sink: The run's annotated-output sink cut down to these entries, or None.
        retries: Times the unit is run again after its worker died (0: live streams,
            which cannot be read twice).
    """

    uid: int
    source: Source
    sink: Any = None
    retries: int = 1

    @property
    def locations(self) -> list[str]:
        """The inputs of the unit (file paths, camera indexes, URLs)."""
        return [e.location for e in self.source.entries]


@dataclass
class UnitDone:
    """What a finished unit reports besides its records.

    Attributes:
        failures: Inputs of the unit that failed, in input order.
        counters: Task counters over the unit (``detector_runs`` for faces).
        seconds: Wall time in the worker.
    """

    failures: list[Failure] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def plan_units(source: Source, workers: int, *, sink: Any = None, chunk: int = 0,
               retries: int = 1) -> list[Unit]:
    """Cut ``source`` into units in input order.

    Args:
        source: The run's source.
        workers: Workers that will run them (sets the default chunk size).
        sink: The run's :class:`~viewfinder.sinks.AnnotatedSink` (each unit gets its part).
        chunk: Still images per unit; 0: up to 8, and at least 4 units per worker.
        retries: Re-runs after a worker died, for files (live streams get 0).

    Raises:
        ConfigError: a negative ``chunk``.
    """
    if chunk < 0:
        raise ConfigError(f"chunk {chunk}: expected 0 (auto) or a positive count")
    if not chunk:
        chunk = max(1, min(8, source.images // max(1, 4 * workers)))
    groups: list[list[Any]] = []
    stills: list[Any] = []
    for entry in source.entries:
        if entry.kind == "image":
            stills.append(entry)
            if len(stills) == chunk:
                groups.append(stills)
                stills = []
            continue
        if stills:
            groups.append(stills)
            stills = []
        groups.append([entry])
    if stills:
        groups.append(stills)
    units = []
    for uid, entries in enumerate(groups):
        live = any(e.live for e in entries)
        part = sink.part(e.location for e in entries) if sink is not None else None
        units.append(Unit(uid, source.subset(entries), part, 0 if live else retries))
    return units


class _Collect:
    """A sink that hands ``(origin, result)`` batches to ``emit``."""

    def __init__(self, emit: Callable[[list[tuple[Origin, Detections]]], None]) -> None:
        self.emit = emit
        self.batch: list[tuple[Origin, Detections]] = []
        self.sent = time.monotonic()

    def write(self, item: Item, result: Detections) -> None:
        self.batch.append((item.origin, result))
        if len(self.batch) >= PART_RECORDS or time.monotonic() - self.sent > PART_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, []
            self.emit(batch)
        self.sent = time.monotonic()

    def end_stream(self, stream: str) -> None:
        self.flush()

    def close(self, ok: bool) -> None:
        if ok:
            self.flush()


def _counters(task: Any) -> dict[str, int]:
    runs = getattr(task, "detector_runs", None)
    return {"detector_runs": int(runs)} if isinstance(runs, int) else {}


def run_unit(task: Any, unit: Unit, emit: Callable[[list[tuple[Origin, Detections]]], None]
             ) -> UnitDone:
    """Run ``task`` over one unit (in a worker); records go to ``emit`` in order.

    The serial runner resets the task when a video starts, as in a serial run.
    """
    t0 = time.perf_counter()
    before = _counters(task)
    collect = _Collect(emit)
    sinks: list[Any] = [collect] + ([unit.sink] if unit.sink is not None else [])
    report = run(task, unit.source, sinks, decode_ahead=2 if unit.source.streams else 1)
    after = _counters(task)
    counters = {k: v - before.get(k, 0) for k, v in after.items()}
    return UnitDone(report.failures, counters, time.perf_counter() - t0)


def remove_strays(unit: Unit, pictures: bool = False, keep: set[str] | frozenset[str] = frozenset()
                  ) -> None:
    """Delete what a killed worker left of a unit's annotated output: temporary files
    (``.name.XXXX.ext`` beside each target) and, with ``pictures``, the finished
    pictures of the inputs not in ``keep`` (an input reported as failed leaves none,
    as in a serial run)."""
    if unit.sink is None:
        return
    for location, target in unit.sink.targets().items():
        target = Path(target)
        if not target.parent.is_dir():
            continue
        for stray in target.parent.glob(f".{target.name}.*{target.suffix}"):
            with contextlib.suppress(OSError):
                stray.unlink()
        if pictures and location not in keep:
            with contextlib.suppress(OSError):
                target.unlink()


def lost_failures(unit: Unit, reason: str) -> list[Failure]:
    """One failure per input of a unit whose worker died on every try."""
    return [Failure(e.source, e.location, f"{e.location}: the worker died on every try "
                    f"({reason})", e.location if e.kind != "image" else None)
            for e in unit.source.entries]
