"""Results of units that finish in any order, written in input order.

:class:`Merger` is what the parent of every engine runs: it takes each unit's
records (``(Origin, Detections)`` batches), the unit's end (its failures and
counters) or its loss, and writes the JSON lines through the one
:class:`~viewfinder.sinks.JsonLinesSink` in input order, counting into one
:class:`~viewfinder.runner.RunReport` exactly as the serial runner does. The first
unfinished unit's records are written as they come (a long video streams); later
units wait in memory until it ends. A unit run again after its worker died sends
its records from the start again; those already taken are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from viewfinder.media.sources import Failure, Item, Origin
from viewfinder.runner import RunReport
from viewfinder.sinks import make_record
from viewfinder.structures import Detections

__all__ = ["Merger", "ScaleReport"]


@dataclass
class ScaleReport(RunReport):
    """A :class:`~viewfinder.runner.RunReport` with what the engine did.

    Attributes:
        engine: ``"pool"`` or ``"ray"``.
        workers: Worker processes or actors.
        threads: Threads per worker.
        units: Work units.
        retried: Units run again after their worker died.
        lost: Units reported as failed because their worker died on every try.
        counters: Task counters summed over the workers (``detector_runs`` for faces).
        worker_threads: Thread counts read back in each worker
            (:func:`viewfinder.scale.threads.thread_report`).
        startup: Seconds until the first worker was ready (Ray: with the cluster).
    """

    engine: str = "pool"
    workers: int = 1
    threads: int = 1
    units: int = 0
    retried: int = 0
    lost: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    worker_threads: list[dict[str, Any]] = field(default_factory=list)
    startup: float = 0.0


@dataclass
class _State:
    kept: list[tuple[Origin, Detections]] = field(default_factory=list)
    seen: int = 0  # records of the current attempt received so far
    written: int = 0
    failures: list[Failure] | None = None  # set when the unit has ended


class Merger:
    """Writes the units' results in input order (see the module docstring).

    Args:
        count: Number of units.
        json_sink: A :class:`~viewfinder.sinks.JsonLinesSink`, or None.
        report: The report to count into.
        progress: ``progress(done, total)`` as items finish anywhere.
        total: Items expected (None: unknown).
        on_result: Called with an image-less :class:`Item` and each result, in order.
    """

    def __init__(self, count: int, json_sink: Any, report: RunReport, *,
                 progress: Callable[[int, int | None], None] | None = None,
                 total: int | None = None,
                 on_result: Callable[[Item, Detections], None] | None = None) -> None:
        self._units = [_State() for _ in range(count)]
        self.json_sink, self.report = json_sink, report
        self.progress, self.total, self.on_result = progress, total, on_result
        self.head = 0
        self.done = 0

    def part(self, index: int, records: list[tuple[Origin, Detections]]) -> None:
        """Records of unit ``index``, in order (repeats of a re-run are skipped)."""
        st = self._units[index]
        for record in records:
            if st.seen >= len(st.kept):
                st.kept.append(record)
                self.done += 1
            st.seen += 1
        self._flush()
        self._tick()

    def retry(self, index: int) -> None:
        """Unit ``index`` runs again: its records start over."""
        self._units[index].seen = 0

    def end(self, index: int, failures: list[Failure], counters: dict[str, int] | None = None
            ) -> None:
        """Unit ``index`` has ended with these failures."""
        self._units[index].failures = list(failures)
        self.done += len(failures)
        counts = getattr(self.report, "counters", None)
        if counts is not None:
            for key, value in (counters or {}).items():
                counts[key] = counts.get(key, 0) + value
        self._flush()
        self._tick()

    def lost(self, index: int, failures: list[Failure]) -> None:
        """Unit ``index`` is lost; ``failures`` name its inputs not yet written."""
        covered = {o.path or o.stream for o, _ in self._units[index].kept}
        self.end(index, [f for f in failures if f.where not in covered or f.stream])

    def covered(self, index: int) -> set[str]:
        """Inputs of unit ``index`` with at least one record taken."""
        return {str(o.path or o.stream) for o, _ in self._units[index].kept}

    @property
    def finished(self) -> bool:
        """Every unit has been written."""
        return self.head >= len(self._units)

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total)

    def _flush(self) -> None:
        while self.head < len(self._units):
            st = self._units[self.head]
            for origin, result in st.kept[st.written:]:
                self._write(origin, result)
            st.written = len(st.kept)
            if st.failures is None:
                return
            self.report.failures.extend(st.failures)
            self._units[self.head] = _State(written=st.written, failures=[])
            self.head += 1

    def _write(self, origin: Origin, result: Detections) -> None:
        if self.json_sink is not None:
            self.json_sink.write_record(make_record(origin, result))
        r = self.report
        if origin.stream is None:
            r.images += 1
        else:
            r.frames += 1
            r.streams[origin.stream] = r.streams.get(origin.stream, 0) + 1
        r.detections += len(result)
        if self.on_result is not None:
            self.on_result(Item(None, origin), result)  # type: ignore[arg-type]
