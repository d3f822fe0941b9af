"""Each worker's threads, pinned to its share of the cores, and read back.

A process that loads ONNX Runtime, OpenVINO, OpenCV, numba and a BLAS with their
defaults starts one pool of ``cores`` threads each; N such workers on one host run
N x cores threads on ``cores`` cores (insightface #2899: 50 s a call instead of
0.27 s). A worker therefore gets ``threads`` = its share, set in three places:

- the environment of the new process (:func:`worker_env`), read once when a library
  loads: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``,
  ``NUMBA_NUM_THREADS``, and ``VIEWFINDER_THREADS``, the budget every inference
  session takes (:func:`viewfinder.runtime.threads.thread_budget`);
- the libraries already loaded, at run time (:func:`pin_threads`): ``cv2.setNumThreads``,
  ``numba.set_num_threads``, threadpoolctl's BLAS/OpenMP limits;
- the task's own ``threads`` option (ORT intra-op, OpenVINO ``INFERENCE_NUM_THREADS``).

:func:`thread_report` reads the counts back from the live objects (the ORT session
options, the OpenVINO compiled models, OpenCV, numba, threadpoolctl) rather than
trusting what was asked.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["ENV_VARS", "pin_threads", "share", "thread_report", "worker_env"]

#: Environment variables a worker process starts with (all set to its thread share).
ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "NUMBA_NUM_THREADS", "VIEWFINDER_THREADS")


def share(workers: int, threads: int = 0, cores: int | None = None) -> int:
    """Threads per worker: ``threads`` if given, else the cores split evenly (at least 1)."""
    if threads > 0:
        return threads
    if cores is None:
        from viewfinder.runtime.threads import physical_cores

        cores = physical_cores()
    return max(1, cores // max(1, workers))


@contextlib.contextmanager
def worker_env(threads: int) -> Iterator[None]:
    """Set :data:`ENV_VARS` to ``threads`` while worker processes are started (a spawned
    process copies the environment when it starts; this process's libraries, already
    loaded, do not read it again)."""
    old = {k: os.environ.get(k) for k in ENV_VARS}
    os.environ.update({k: str(threads) for k in ENV_VARS})
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pin_threads(threads: int) -> None:
    """Limit the libraries loaded in this process to ``threads`` threads each (OpenCV,
    numba, threadpoolctl's BLAS and OpenMP pools) and set :data:`ENV_VARS` for those
    that load later."""
    os.environ.update({k: str(threads) for k in ENV_VARS})
    import cv2

    cv2.setNumThreads(threads)
    if "numba" in sys.modules or _installed("numba"):
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if _installed("threadpoolctl"):
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _sessions(obj: Any, depth: int = 4, seen: set[int] | None = None) -> Iterator[Any]:
    """Inference sessions reachable from ``obj`` through attributes and lists (a task's
    detector, landmarker and its per-thread workers...)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth < 0 or obj is None:
        return
    seen.add(id(obj))
    if getattr(obj, "backend", None) in ("ort", "openvino") and hasattr(obj, "threads"):
        yield obj
        return
    if isinstance(obj, list | tuple):
        for value in obj:
            yield from _sessions(value, depth - 1, seen)
        return
    for value in getattr(obj, "__dict__", {}).values():
        if hasattr(value, "__dict__") or isinstance(value, list | tuple):
            yield from _sessions(value, depth - 1, seen)


def _ort_threads(session: Any) -> dict[str, Any]:
    options = session._sess.get_session_options()
    return {"backend": "ort", "intra_op": options.intra_op_num_threads,
            "inter_op": options.inter_op_num_threads}


def _ov_threads(session: Any) -> dict[str, Any]:
    """``INFERENCE_NUM_THREADS`` and ``NUM_STREAMS`` of every model compiled so far."""
    requests = [*session._compiled.values(), session._dynamic]
    if session._streams is not None:  # AsyncInferQueue: one request per stream
        requests.append(session._streams[0])
    compiled = [r.get_compiled_model() for r in requests if r is not None]
    return {"backend": "openvino",
            "inference_threads": [int(c.get_property("INFERENCE_NUM_THREADS")) for c in compiled],
            "streams": [int(c.get_property("NUM_STREAMS")) for c in compiled]}


def thread_report(obj: Any) -> dict[str, Any]:
    """Thread counts in use in this process, read back from the live objects.

    Args:
        obj: A task (or anything holding inference sessions in its attributes).

    Returns:
        ``{"cv2": n, "numba": n | None, "blas": [{"api", "num_threads"}...],
        "sessions": [{"backend": "ort", "intra_op", "inter_op"} |
        {"backend": "openvino", "inference_threads", "streams"}...], "pid": pid}``.
    """
    import cv2

    report: dict[str, Any] = {"pid": os.getpid(), "cv2": cv2.getNumThreads(), "numba": None,
                              "blas": [], "sessions": []}
    if "numba" in sys.modules:
        report["numba"] = sys.modules["numba"].get_num_threads()
    if _installed("threadpoolctl"):
        from threadpoolctl import threadpool_info

        report["blas"] = [{"api": i.get("user_api"), "library": i.get("internal_api"),
                           "num_threads": i.get("num_threads")} for i in threadpool_info()]
    for session in _sessions(obj):
        try:
            info = _ort_threads(session) if session.backend == "ort" else _ov_threads(session)
        except AttributeError:  # another Session implementation: what it says it uses
            info = {"backend": session.backend, "threads": session.threads}
        info["path"] = os.path.basename(str(getattr(session, "path", "")))
        report["sessions"].append(info)
    return report
