"""A local process pool that survives its workers: the default engine.

Each worker is a fresh process (``spawn``: ONNX Runtime's and OpenVINO's thread
pools do not survive ``fork``) that pins its threads to its share of the cores
(:mod:`viewfinder.scale.threads`), builds its state once (a task from a
:class:`~viewfinder.tasks.TaskSpec`, or anything a ``setup`` callable returns), then
runs one unit at a time. A worker that dies (SIGKILL, out of memory, a crash in a
native library) is replaced; its unit runs once more on another worker and, if that
dies too, is reported lost. An error raised by the work itself stops the run, as it
would in one process.

:func:`map_units` is the generic entry point (``work(state, unit)`` over units,
results in input order), for evaluation and training stages as much as for the
runner; :class:`Pool` is the machinery under it, which also streams partial
results (the frames of a long video) to the caller.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from viewfinder.errors import ConfigError, ViewfinderError, WorkerError
from viewfinder.scale.threads import pin_threads, share, thread_report, worker_env

__all__ = ["Lost", "Pool", "map_units"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lost:
    """A unit whose worker died on every try: ``reason`` says how (e.g. ``signal 9``)."""

    reason: str


@dataclass(frozen=True)
class BuildSpec:
    """Setup that builds a :class:`~viewfinder.tasks.TaskSpec` with ``threads`` set."""

    spec: Any
    threads: int

    def __call__(self) -> Any:
        """The task, built in this process."""
        options = dict(self.spec.options)
        if self.spec.name != "dpm" or "threads" in options:
            options["threads"] = self.threads
        return type(self.spec)(self.spec.name, self.spec.model, options).build()


@dataclass(frozen=True)
class _NoEmit:
    work: Callable[[Any, Any], Any]

    def __call__(self, state: Any, unit: Any, emit: Callable[[Any], None]) -> Any:
        return self.work(state, unit)


def portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a :class:`WorkerError` with its text; either
    way with the worker's traceback as a note (shown where the parent raises it)."""
    if hasattr(exc, "add_note") and not isinstance(exc, ViewfinderError):
        exc.add_note("in the worker process:\n" + traceback.format_exc().rstrip())
    try:
        return pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any pickling problem
        return WorkerError(f"worker: {type(exc).__name__}: {exc}")


def _worker_main(conn: Any, setup: Callable[[], Any] | None,
                 work: Callable[[Any, Any, Callable[[Any], None]], Any], threads: int) -> None:
    """A worker process: pin threads, build the state, run units until told to stop."""
    pin_threads(threads)
    try:
        state = setup() if setup is not None else None
        pin_threads(threads)  # again: libraries the setup loaded (numba...)
        conn.send(("ready", thread_report(state)))
    except BaseException as exc:  # handed to the parent, raised there
        log.debug("worker setup failed:\n%s", traceback.format_exc())
        conn.send(("failed", portable(exc)))
        return
    first = True
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, unit = msg
        try:
            result = work(state, unit, lambda payload, i=index: conn.send(("part", i, payload)))
        except BaseException as exc:
            log.debug("worker unit %d failed:\n%s", index, traceback.format_exc())
            conn.send(("error", index, portable(exc)))
            return
        if first:  # sessions compile lazily: read the threads back once they have run
            conn.send(("threads", thread_report(state)))
            first = False
        conn.send(("done", index, result))


@dataclass
class _Worker:
    wid: int
    process: Any
    conn: Any
    ready: bool = False
    current: int | None = None


@dataclass
class Pool:
    """Worker processes running ``work(state, unit, emit)``; see the module docstring.

    Args:
        work: Picklable; runs one unit, may call ``emit(payload)`` for partial results.
        setup: Picklable, called once per worker; its result is ``state`` (a
            :class:`~viewfinder.tasks.TaskSpec` is built with ``threads`` set).
        workers: Processes.
        threads: Threads per worker (0: the cores split evenly).
        ahead: Units dispatched beyond the first unfinished one (bounds what the
            caller buffers to keep input order); 0: ``8 x workers`` (at least 16).
        stagger: Start one worker first and the others once it is ready (a backend
            chosen by measuring, ``backend="auto"``, is then measured once and shared).

    Attributes:
        retried: Units run again after their worker died.
        lost: Units lost (their worker died on every try).
    """

    work: Callable[[Any, Any, Callable[[Any], None]], Any]
    setup: Any = None
    workers: int = 2
    threads: int = 0
    ahead: int = 0
    stagger: bool = False
    retried: int = 0
    lost: int = 0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers {self.workers}: expected at least 1")
        self.threads = share(self.workers, self.threads)
        if hasattr(self.setup, "build") and hasattr(self.setup, "options"):
            self.setup = BuildSpec(self.setup, self.threads)
        self.ahead = self.ahead or max(16, 8 * self.workers)
        self._ctx = multiprocessing.get_context("spawn")
        self._live: list[_Worker] = []
        self._started = 0
        self._threads: dict[int, dict[str, Any]] = {}

    @property
    def threads_seen(self) -> list[dict[str, Any]]:
        """:func:`~viewfinder.scale.threads.thread_report` of every worker that started
        (read again after its first unit, once its sessions have compiled)."""
        return list(self._threads.values())

    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, daemon=True,
                                    args=(child, self.setup, self.work, self.threads),
                                    name=f"viewfinder-worker-{self._started}")
        with worker_env(self.threads):
            process.start()
        child.close()
        worker = _Worker(self._started, process, parent)
        self._started += 1
        self._live.append(worker)
        return worker

    def _reason(self, worker: _Worker) -> str:
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        return f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"

    def _receive(self, worker: _Worker) -> tuple | None:
        """The next message, or None when the worker is gone."""
        try:
            return worker.conn.recv()
        except (EOFError, OSError):
            return None

    def run(self, units: Sequence[Any], retries: int | Callable[[Any], int] = 1,
            keep: bool = False) -> Iterator[tuple[str, int, Any]]:
        """Run every unit; yield events as they happen (any order across units):
        ``("ready", worker, thread_report)``, ``("part", i, payload)``,
        ``("done", i, result)``, ``("retry", i, reason)`` (partial results of unit
        ``i`` start over) and ``("lost", i, reason)``.

        With ``keep``, the workers stay up after the last unit for the next ``run``
        (their state built once); a run that ends early (an error, the caller
        stopping) still closes them: no unit of it is left in flight.

        Raises:
            WorkerError: no worker could start.
            Exception: whatever ``setup`` or ``work`` raised, as raised.
        """
        tries = retries if callable(retries) else (lambda _unit: retries)
        pending = deque(range(len(units)))
        attempts = [0] * len(units)
        finished: set[int] = set()
        head = 0
        restarts = 2 * self.workers + len(units) // 10
        done = False
        try:
            for _ in range((1 if self.stagger else self.workers) - len(self._live)):
                self._start()
            while len(finished) < len(units):
                while head in finished:
                    head += 1
                self._dispatch(units, pending, head)
                if not self._live:
                    raise WorkerError("every worker process died; see the log")
                yield from self._events(units, pending, attempts, finished, tries)
                if self.stagger and self._started < self.workers and any(
                        w.ready for w in self._live):
                    for _ in range(self.workers - self._started):
                        self._start()
                    self.stagger = False
                restarts = self._replace(restarts, pending, len(finished) < len(units))
            done = True
        finally:
            if not (keep and done):
                self.close()

    def _dispatch(self, units: Sequence[Any], pending: deque[int], head: int) -> None:
        for worker in self._live:
            if not pending or pending[0] >= head + self.ahead:
                return
            if worker.ready and worker.current is None:
                index = pending.popleft()
                worker.current = index
                worker.conn.send((index, units[index]))

    def _events(self, units: Sequence[Any], pending: deque[int], attempts: list[int],
                finished: set[int], tries: Callable[[Any], int]
                ) -> Iterator[tuple[str, int, Any]]:
        handles = {w.conn: w for w in self._live} | {w.process.sentinel: w for w in self._live}
        for handle in wait(list(handles), timeout=1.0):
            worker = handles[handle]
            if worker not in self._live:
                continue
            msg = self._receive(worker) if worker.conn.poll() or handle is worker.conn else None
            if msg is None:
                if handle is worker.conn or not worker.process.is_alive():
                    yield from self._died(worker, units, pending, attempts, finished, tries)
                continue
            kind = msg[0]
            if kind == "ready":
                worker.ready = True
                self._threads[worker.wid] = msg[1]
                yield ("ready", worker.wid, msg[1])
            elif kind == "threads":
                self._threads[worker.wid] = msg[1]
            elif kind in ("failed", "error"):
                raise msg[-1]
            elif kind == "part":
                yield msg
            else:  # done
                worker.current = None
                finished.add(msg[1])
                yield msg

    def _died(self, worker: _Worker, units: Sequence[Any], pending: deque[int],
              attempts: list[int], finished: set[int], tries: Callable[[Any], int]
              ) -> Iterator[tuple[str, int, Any]]:
        self._live.remove(worker)
        reason = self._reason(worker)
        worker.conn.close()
        index = worker.current
        log.warning("worker %d (pid %s) died (%s)%s", worker.wid, worker.process.pid, reason,
                    f" while running unit {index}" if index is not None else "")
        if index is None:
            return
        attempts[index] += 1
        if attempts[index] <= tries(units[index]):
            self.retried += 1
            pending.appendleft(index)
            yield ("retry", index, reason)
        else:
            self.lost += 1
            finished.add(index)
            yield ("lost", index, reason)

    def _replace(self, restarts: int, pending: deque[int], more: bool) -> int:
        """Start workers for those that died while work is left."""
        want = self.workers if not self.stagger else 1
        while more and pending and len(self._live) < want and restarts > 0:
            self._start()
            restarts -= 1
        return restarts

    def close(self) -> None:
        """Stop every worker (they finish nothing more)."""
        for worker in self._live:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
        for worker in self._live:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
            worker.conn.close()
        self._live = []


def map_units(work: Callable[[Any, Any], Any], units: Sequence[Any], *, setup: Any = None,
              workers: int = 2, threads: int = 0, retries: int = 1,
              on_lost: str = "raise") -> Iterator[Any]:
    """``work(state, unit)`` for every unit, results in input order.

    With ``workers`` <= 1 everything runs in this process (``state = setup()``).

    Args:
        work: A picklable function (module level) of ``(state, unit)``.
        units: Picklable inputs (paths, image ids, (model, image) pairs...).
        setup: Picklable, called once per worker (e.g. a model loader or a
            :class:`~viewfinder.tasks.TaskSpec`); None: ``state`` is None.
        workers: Processes.
        threads: Threads per worker (0: the cores split evenly).
        retries: Runs again after a worker died.
        on_lost: ``"raise"`` (a :class:`WorkerError`) or ``"yield"`` (a :class:`Lost`
            in the unit's place).

    Raises:
        WorkerError: a unit was lost and ``on_lost`` is ``"raise"``, or no worker started.
    """
    if on_lost not in ("raise", "yield"):
        raise ConfigError(f"on_lost {on_lost!r}: expected raise or yield")
    if workers <= 1:
        if hasattr(setup, "build") and hasattr(setup, "options"):
            setup = BuildSpec(setup, threads) if threads else setup.build
        state = setup() if setup is not None else None
        for unit in units:
            yield work(state, unit)
        return
    pool = Pool(_NoEmit(work), setup, workers, threads)
    events = pool.run(units, retries)
    try:
        yield from in_order(events, units, on_lost)
    finally:
        events.close()


def in_order(events: Iterator[tuple[str, int, Any]], units: Sequence[Any],
             on_lost: str = "raise") -> Iterator[Any]:
    """The results of :meth:`Pool.run`'s events, in input order (see :func:`map_units`
    for ``on_lost``)."""
    results: dict[int, Any] = {}
    nxt = 0
    for kind, index, payload in events:
        if kind == "done":
            results[index] = payload
        elif kind == "lost":
            if on_lost == "raise":
                raise WorkerError(f"unit {index} ({units[index]!r:.80}): the worker died "
                                  f"on every try ({payload})")
            results[index] = Lost(payload)
        while nxt in results:
            yield results.pop(nxt)
            nxt += 1
