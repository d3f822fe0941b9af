"""Scale-out: the same run on every core (a process pool) or on a Ray cluster.

- :func:`run_scaled` / :func:`run_pool` / :func:`~viewfinder.scale.ray_engine.run_ray`:
  a task over a source, with the serial runner's outputs (the same JSON lines in
  input order, the same annotated files, the same failures and exit codes).
- :func:`map_units`: any picklable ``work(state, unit)`` over units on the pool,
  results in input order (``state`` built once per worker by ``setup``), for
  evaluation and training stages.
- :mod:`viewfinder.scale.threads`: each worker's threads pinned to its share of the
  cores, and read back from the live sessions.

Workers are ``spawn``-ed processes (ONNX Runtime and OpenVINO thread pools do not
survive ``fork``); a worker killed mid-run is replaced and its unit retried once,
then reported as failed. See ``docs/scale.md``.
"""

from __future__ import annotations

from viewfinder.scale.engine import (
           ENGINES,
           FORMATS,
           ScaleOptions,
           check_scale,
           run_pool,
           run_scaled,
)
from viewfinder.scale.merge import ScaleReport
from viewfinder.scale.pool import Lost, Pool, map_units

__all__ = ["ENGINES", "FORMATS", "Lost", "Pool", "ScaleOptions", "ScaleReport", "check_scale",
           "map_units", "run_pool", "run_scaled"]
