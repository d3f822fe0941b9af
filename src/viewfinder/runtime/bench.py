"""The benchmark loop and its statistics (the library behind ``viewfinder bench``).

The loop is deliberately thin: feeds are prepared before timing, each call is
timed with ``perf_counter`` around ``session.run`` alone, and outputs are kept
from the first pass only, so the tool's own overhead stays within a few
microseconds per call (measured in ``benchmarks/runtime.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from viewfinder.errors import ConfigError, require
from viewfinder.runtime.base import Session
from viewfinder.runtime.bench_io import Sample

__all__ = ["BenchResult", "MatrixRow", "OutputDelta", "Stats", "backend_matrix", "check_loop",
           "compare_outputs", "run_bench",
           "run_interleaved", "summarize"]

#: ``progress(done_calls, total_calls)``.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Stats:
    """Latency statistics in milliseconds and throughput in samples per second."""

    runs: int
    min: float
    mean: float
    p50: float
    p90: float
    p99: float
    max: float
    throughput: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict for JSON."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class BenchResult:
    """Per-call times (seconds), their stats, and the outputs of the first pass."""

    times: np.ndarray
    stats: Stats
    outputs: list[tuple[str, list[np.ndarray]]] = field(repr=False)
    describe: str = ""


@dataclass(frozen=True)
class OutputDelta:
    """Absolute difference of one output tensor between two runs."""

    index: int
    name: str
    max_abs: float
    mean_abs: float


def summarize(times: Sequence[float] | np.ndarray, batch: int = 1) -> Stats:
    """min / mean / p50 / p90 / p99 / max in ms, and samples per second.

    Raises:
        ConfigError: no times.
    """
    t = np.asarray(times, dtype=np.float64)
    require(t.size > 0, ConfigError, "no timed runs (--loop must be at least 1)")
    ms = t * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return Stats(int(t.size), float(ms.min()), float(ms.mean()), float(p50), float(p90),
                 float(p99), float(ms.max()), float(batch * t.size / t.sum()))


def check_loop(loop: int, warmup: int) -> None:
    if loop < 1:
        raise ConfigError(f"--loop {loop}: expected at least 1")
    if warmup < 0:
        raise ConfigError(f"--warmup {warmup}: expected 0 or more")


def run_bench(session: Session, samples: Sequence[Sample], loop: int = 100, warmup: int = 5,
              batch: int = 1, progress: Progress | None = None) -> BenchResult:
    """Run every sample ``loop`` times (after ``warmup`` untimed passes) and time each call.

    Returns:
        Times in call order, their stats, and the outputs of the first timed pass.
    """
    check_loop(loop, warmup)
    require(len(samples) > 0, ConfigError, "no inputs to run")
    run = session.run
    for _ in range(warmup):
        for _, feeds in samples:
            run(feeds)
    n = len(samples)
    times = np.empty(loop * n)
    outputs: list[tuple[str, list[np.ndarray]]] = []
    clock = time.perf_counter
    for k in range(loop):
        for j, (name, feeds) in enumerate(samples):
            t0 = clock()
            out = run(feeds)
            times[k * n + j] = clock() - t0
            if k == 0:
                outputs.append((name, out))
        if progress is not None:
            progress((k + 1) * n, loop * n)
    return BenchResult(times, summarize(times, batch), outputs, session.describe())


def run_interleaved(sessions: Sequence[Session], samples: Sequence[Sequence[Sample]],
                    loop: int = 100, warmup: int = 5, batch: int = 1,
                    progress: Progress | None = None) -> list[BenchResult]:
    """Benchmark several sessions in one loop, alternating call by call.

    Load on the machine then hits every session alike, which is what makes their
    ratio meaningful on a shared host.
    """
    check_loop(loop, warmup)
    parts = [run_bench(s, smp, loop=1, warmup=warmup, batch=batch)
             for s, smp in zip(sessions, samples, strict=True)]
    times: list[list[float]] = [[] for _ in sessions]
    clock = time.perf_counter
    for k in range(loop):
        for i, (sess, smp) in enumerate(zip(sessions, samples, strict=True)):
            for _, feeds in smp:
                t0 = clock()
                sess.run(feeds)
                times[i].append(clock() - t0)
        if progress is not None:
            progress(k + 1, loop)
    return [BenchResult(np.asarray(t), summarize(t, batch), p.outputs, p.describe)
            for t, p in zip(times, parts, strict=True)]


def compare_outputs(a: Sequence[np.ndarray], b: Sequence[np.ndarray],
                    names: Sequence[str]) -> list[OutputDelta]:
    """Max and mean absolute difference per output (outputs paired in order).

    Raises:
        ConfigError: different output counts or shapes (the models are not comparable).
    """
    if len(a) != len(b):
        raise ConfigError(f"outputs differ in number: {len(a)} vs {len(b)}")
    deltas = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x.shape != y.shape:
            raise ConfigError(f"output {i} ({names[i]}): shapes differ, {x.shape} vs {y.shape}")
        d = np.abs(x.astype(np.float64) - y.astype(np.float64))
        deltas.append(OutputDelta(i, names[i], float(d.max(initial=0.0)),
                                  float(d.mean()) if d.size else 0.0))
    return deltas


@dataclass(frozen=True)
class MatrixRow:
    """One backend x precision cell of ``bench --backends all``."""

    backend: str
    precision: str
    result: BenchResult | None
    deltas: list[OutputDelta]
    error: str = ""


def backend_matrix(
    load: Callable[[str, str], Session],
    backends: Sequence[str],
    precisions: Sequence[str],
    samples: Sequence[Sample],
    loop: int = 50,
    warmup: int = 5,
    batch: int = 1,
    progress: Progress | None = None,
) -> list[MatrixRow]:
    """Time every loadable backend x precision, interleaved, with deltas to the first.

    Args:
        load: ``load(backend, precision) -> Session``; a :class:`ViewfinderError` marks
            the cell unavailable (its message is kept).
        backends: Backends to try (the first backend's f32 run is the reference).
        precisions: Precisions to try.
        samples: The inputs (shared by all cells).

    Returns:
        One row per cell, in order; unavailable cells carry ``error``.
    """
    from viewfinder.errors import ViewfinderError

    cells: list[tuple[str, str, Session | None, str]] = []
    for backend in backends:
        for precision in precisions:
            try:
                cells.append((backend, precision, load(backend, precision), ""))
            except ViewfinderError as exc:
                cells.append((backend, precision, None, str(exc)))
    live = [c for c in cells if c[2] is not None]
    require(bool(live), ConfigError, "no backend x precision could load this model")
    results = run_interleaved([c[2] for c in live], [samples] * len(live), loop, warmup,
                              batch, progress)
    by_cell = {(c[0], c[1]): r for c, r in zip(live, results, strict=True)}
    ref = results[0].outputs
    names = [o.name for o in live[0][2].outputs]  # type: ignore[union-attr]
    rows = []
    for backend, precision, _, error in cells:
        res = by_cell.get((backend, precision))
        deltas = [] if res is None else _deltas_all(ref, res.outputs, names)
        rows.append(MatrixRow(backend, precision, res, deltas, error))
    return rows


def _deltas_all(ref: list[tuple[str, list[np.ndarray]]], got: list[tuple[str, list[np.ndarray]]],
                names: Sequence[str]) -> list[OutputDelta]:
    """Per-output deltas, worst over all samples."""
    worst: dict[int, OutputDelta] = {}
    for (_, a), (_, b) in zip(ref, got, strict=True):
        for d in compare_outputs(a, b, names):
            if d.index not in worst or d.max_abs > worst[d.index].max_abs:
                worst[d.index] = d
    return [worst[i] for i in sorted(worst)]
