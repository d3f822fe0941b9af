"""A map that stays up between calls, on this process, the pool or Ray.

Training revisits the same images round after round (hard-negative mining over the
negative images, latent relabelling of the positives): the workers, and what each
built once (its dataset reader, its cache of feature pyramids), should survive from
one round to the next. :func:`open_mapper` gives a :class:`Mapper` whose
:meth:`~Mapper.map` runs ``work(state, unit)`` over units and yields the results in
input order, on:

- ``workers`` <= 1 with the pool engine: this process (``state = setup()`` here);
- the process pool (``engine="pool"``): :class:`~viewfinder.scale.pool.Pool` kept
  alive between calls, a killed worker replaced and its unit retried once;
- Ray (``engine="ray"``): one actor per worker, built once with ``setup``, a killed
  actor restarted and its task retried once (``max_restarts``, ``max_task_retries``).

Whatever the engine, each unit's result is computed by the same function on the same
input, so results are those of the serial run (the caller keeps them in order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from viewfinder.errors import ConfigError, WorkerError
from viewfinder.scale.pool import Pool, _NoEmit, in_order
from viewfinder.scale.threads import pin_threads, share, thread_report

__all__ = ["Mapper", "open_mapper"]

log = logging.getLogger(__name__)


class Mapper:
    """``work(state, unit)`` over units in input order; see the module docstring.

    Use :func:`open_mapper`; close it (or use it as a context manager) when done.

    Attributes:
        engine: ``"serial"``, ``"pool"`` or ``"ray"``.
        workers: Processes or actors (1 when serial).
        threads: Threads per worker.
    """

    engine = "serial"

    def __init__(self, work: Callable[[Any, Any], Any], setup: Any = None) -> None:
        self.work, self.setup = work, setup
        self.workers, self.threads = 1, 0
        self._state: Any = None
        self._built = False

    @property
    def state(self) -> Any:
        """The serial state (built on first use)."""
        if not self._built:
            self._state = self.setup() if self.setup is not None else None
            self._built = True
        return self._state

    def map(self, units: Sequence[Any]) -> Iterator[Any]:
        """The result of every unit, in input order.

        Raises:
            WorkerError: a unit whose worker died on every try, or no worker started.
        """
        state = self.state
        for unit in units:
            yield self.work(state, unit)

    def threads_seen(self) -> list[dict[str, Any]]:
        """Thread counts read back in each worker (this process when serial)."""
        return [thread_report(self._state)]

    def close(self) -> None:
        """Stop the workers (a serial mapper drops its state)."""
        self._state, self._built = None, False

    def __enter__(self) -> Mapper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PoolMapper(Mapper):
    engine = "pool"

    def __init__(self, work: Callable[[Any, Any], Any], setup: Any, workers: int,
                 threads: int) -> None:
        super().__init__(work, setup)
        self._pool = Pool(_NoEmit(work), setup, workers, threads)
        self.workers, self.threads = workers, self._pool.threads

    def map(self, units: Sequence[Any]) -> Iterator[Any]:
        yield from in_order(self._pool.run(units, 1, keep=True), units)

    def threads_seen(self) -> list[dict[str, Any]]:
        return self._pool.threads_seen

    def close(self) -> None:
        self._pool.close()


class MapActor:
    """A Ray actor for :class:`_RayMapper`: threads pinned, ``setup`` run once."""

    def __init__(self, work: Callable[[Any, Any], Any], setup: Any, threads: int) -> None:
        pin_threads(threads)
        self.work = work
        self.state = setup() if setup is not None else None
        pin_threads(threads)

    def run(self, unit: Any) -> Any:
        """``work(state, unit)``."""
        return self.work(self.state, unit)

    def threads(self) -> dict[str, Any]:
        """:func:`~viewfinder.scale.threads.thread_report` of this actor."""
        return thread_report(self.state)


class _RayMapper(Mapper):
    engine = "ray"

    def __init__(self, work: Callable[[Any, Any], Any], setup: Any, workers: int,
                 threads: int, address: str | None) -> None:
        import viewfinder.scale.ray_compat as ray_compat

        super().__init__(work, setup)
        ray = ray_compat.import_ray()
        self.threads = threads or 1
        self._started = ray_compat.init(address, workers * self.threads if workers else None)
        self.workers = workers or max(1, ray_compat.cluster_cpus() // self.threads)
        remote = ray.remote(num_cpus=self.threads, max_restarts=1, max_task_retries=1)
        self._actors = [remote(MapActor).remote(work, setup, self.threads)
                        for _ in range(self.workers)]

    def map(self, units: Sequence[Any]) -> Iterator[Any]:
        import viewfinder.scale.ray_compat as ray_compat

        ray = ray_compat.import_ray()
        # Round robin, at most two units in flight per actor, results in input order.
        refs: list[tuple[int, Any]] = []
        for i, unit in enumerate(units):
            refs.append((i, self._actors[i % len(self._actors)].run.remote(unit)))
            if len(refs) >= 2 * len(self._actors):
                yield self._take(ray, refs.pop(0), units)
        while refs:
            yield self._take(ray, refs.pop(0), units)

    @staticmethod
    def _take(ray: Any, ref: tuple[int, Any], units: Sequence[Any]) -> Any:
        from ray.exceptions import RayActorError, RayTaskError

        index, pending = ref
        try:
            return ray.get(pending)
        except RayTaskError as exc:  # the work itself raised: as in one process
            raise exc.as_instanceof_cause() from None
        except RayActorError as exc:
            raise WorkerError(f"unit {index} ({units[index]!r:.80}): its Ray actor died on "
                              f"every try ({type(exc).__name__})") from None

    def threads_seen(self) -> list[dict[str, Any]]:
        import viewfinder.scale.ray_compat as ray_compat

        ray = ray_compat.import_ray()
        return ray.get([a.threads.remote() for a in self._actors])

    def close(self) -> None:
        import viewfinder.scale.ray_compat as ray_compat

        ray = ray_compat.import_ray()
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []
        if self._started:
            ray.shutdown()
            self._started = False


def open_mapper(work: Callable[[Any, Any], Any], setup: Any = None, *, workers: int = 0,
                engine: str = "pool", address: str | None = None,
                threads: int = 0) -> Mapper:
    """A :class:`Mapper` for ``work`` on the engine named.

    Args:
        work: Picklable ``work(state, unit)`` (a module-level function).
        setup: Picklable, called once per worker; its result is ``state``.
        workers: Processes or actors; with the pool, <= 1 runs here.
            Ray: 0 means the cluster's CPUs divided by ``threads``.
        engine: ``"pool"`` or ``"ray"``.
        address: Ray cluster (``auto``, ``HOST:PORT``); None starts a local one.
        threads: Threads per worker (0: the cores split evenly; Ray: 1).

    Raises:
        ConfigError: an unknown engine, a negative worker count, ``address`` without Ray.
        MissingDependencyError: ``engine="ray"`` without Ray installed.
    """
    if engine not in ("pool", "ray"):
        raise ConfigError(f"engine {engine!r}: expected pool or ray")
    if workers < 0:
        raise ConfigError(f"workers {workers}: expected 0 or more")
    if address and engine != "ray":
        raise ConfigError("address: only with engine ray")
    if engine == "ray":
        return _RayMapper(work, setup, workers, threads, address)
    if workers <= 1:
        mapper = Mapper(work, setup)
        mapper.threads = share(1, threads)
        return mapper
    return _PoolMapper(work, setup, workers, threads)
