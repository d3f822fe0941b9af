"""Everything that differs between Ray versions, in one place.

Tested against :data:`TESTED` (the ``ray`` extra's pin). What moved:

- the actor pool of ``map_batches``: ``compute=ActorPoolStrategy(...)`` up to 2.8,
  ``concurrency=n`` from 2.9 (``compute`` deprecated), back to ``compute=`` in 2.51
  (``concurrency`` deprecated); ``ActorPoolStrategy(size=n)`` exists from 2.5
  (``min_size``/``max_size`` before);
- the number of blocks of ``from_items``: ``parallelism=`` until 2.9,
  ``override_num_blocks=`` after;
- actor restarts and task retries: Ray Data defaults both to -1 (forever); they are
  passed as ``ray_remote_args``, deprecated in 2.60 (to be removed in 2.64);
- the data context: ``DatasetContext`` before 2.5, ``DataContext`` after; its
  ``max_errored_blocks`` (skip a block whose task failed on every retry instead of
  failing the dataset) from 2.8; progress-bar switches come and go.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from viewfinder.errors import MissingDependencyError

__all__ = ["TESTED", "actor_pool_args", "cluster_cpus", "data_context", "from_items",
           "import_ray", "init", "map_batches", "version"]

#: The Ray version the tests run against (``pip install 'viewfinder[ray]'``).
TESTED = "2.60.0"


def import_ray() -> Any:
    """``ray`` with ``ray.data`` loaded.

    Raises:
        MissingDependencyError: Ray (with its data extra) is not installed.
    """
    try:
        import ray
        import ray.data  # noqa: F401 - loads the submodule
    except ImportError:
        raise MissingDependencyError("ray", "ray", "--engine ray") from None
    return ray


def version() -> tuple[int, int]:
    """``(major, minor)`` of the installed Ray."""
    ray = import_ray()
    major, minor = (int("".join(c for c in p if c.isdigit()) or 0)
                    for p in ray.__version__.split(".")[:2])
    return major, minor


def init(address: str | None, num_cpus: int | None) -> bool:
    """Connect to ``address`` (``auto``, ``HOST:PORT``, ``ray://...``) or start a local
    single-node Ray with ``num_cpus`` CPUs and no dashboard. Returns whether this call
    started or connected it (and so should shut it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.WARNING}
    if "configure_logging" in inspect.signature(ray.init).parameters:
        kwargs["configure_logging"] = True
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)
    return True


def cluster_cpus() -> int:
    """CPUs of the connected cluster."""
    return max(1, int(import_ray().cluster_resources().get("CPU", 1)))


def actor_pool_args(size: int) -> dict[str, Any]:
    """``map_batches`` keyword arguments for a fixed pool of ``size`` actors."""
    ray = import_ray()
    v = version()
    if (2, 9) <= v < (2, 51):
        return {"concurrency": size}
    strategy = ray.data.ActorPoolStrategy
    try:
        return {"compute": strategy(size=size)}
    except TypeError:  # before 2.5
        return {"compute": strategy(min_size=size, max_size=size)}


def data_context(max_errored_blocks: int = -1) -> Any:
    """The current data context, quiet (no progress bars) and, where Ray supports it,
    skipping blocks whose task failed on every retry (a lost unit, reported as failed)
    instead of failing the whole run."""
    ray = import_ray()
    context = getattr(ray.data, "DataContext", None) or ray.data.context.DatasetContext
    ctx = context.get_current()
    for name, value in (("enable_progress_bars", False), ("print_on_execution_start", False),
                        ("enable_operator_progress_bars", False),
                        ("max_errored_blocks", max_errored_blocks)):
        if hasattr(ctx, name):
            setattr(ctx, name, value)
    return ctx


def from_items(items: list[dict[str, Any]], blocks: int) -> Any:
    """A dataset of ``items`` in ``blocks`` blocks (one unit per block: a lost block is
    one lost unit)."""
    ray = import_ray()
    params = inspect.signature(ray.data.from_items).parameters
    key = "override_num_blocks" if "override_num_blocks" in params else "parallelism"
    return ray.data.from_items(items, **{key: max(1, blocks)})


def map_batches(ds: Any, fn: Any, *, actors: int, retries: int, **kwargs: Any) -> Any:
    """``ds.map_batches(fn, ...)`` on a fixed pool of ``actors``, an actor that died
    restarted and its task retried ``retries`` times (not forever, Ray Data's default)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        return ds.map_batches(fn, max_restarts=retries, max_task_retries=retries,
                              **actor_pool_args(actors), **kwargs)
