"""One process-wide thread budget shared by every inference session.

The budget (``VIEWFINDER_THREADS``, default: the physical cores this process may
run on) is the most intra-op threads any session uses. Sessions of one process
run one after another in a pipeline (detect, then landmarks), so each may use the
whole budget, but never more: five sessions no longer spawn five pools of
``os.cpu_count()`` threads each. Inter-op parallelism is 1 (these graphs are
chains), ONNX Runtime's idle threads do not spin (a spinning pool steals the cores
the next session needs: measured 2-10x slower detector + landmarks pipelines on a
busy 2-core host), and OpenVINO sessions share one ``ov.Core`` and one TBB arena.
"""

from __future__ import annotations

import os

from viewfinder.errors import ConfigError

__all__ = ["cpu_flags", "physical_cores", "thread_budget"]

_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
          "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_bf16", "amx_int8", "amx_fp16")


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def cpu_flags() -> tuple[str, ...]:
    """SIMD flags of this host that matter to inference kernels (from /proc/cpuinfo)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return tuple(f for f in _FLAGS if f in have)
    return ()


def physical_cores() -> int:
    """Physical cores available to this process (SMT siblings counted once)."""
    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        logical = os.cpu_count() or 1
    info = _cpuinfo()
    cores = {line.split(":", 1)[1].strip() for line in info.splitlines()
             if line.startswith("core id")}
    siblings = [int(line.split(":", 1)[1]) for line in info.splitlines()
                if line.startswith("siblings")]
    per_core = max(1, siblings[0] // max(1, len(cores))) if siblings and cores else 1
    return max(1, logical // per_core)


def thread_budget(requested: int = 0) -> int:
    """Threads a session should use: ``requested`` if > 0, else the process budget.

    Raises:
        ConfigError: ``requested`` is negative or ``VIEWFINDER_THREADS`` is not a positive int.
    """
    if requested < 0:
        raise ConfigError(f"threads: expected 0 (auto) or a positive count, got {requested}")
    if requested:
        return requested
    env = os.environ.get("VIEWFINDER_THREADS", "")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ConfigError(f"VIEWFINDER_THREADS={env!r}: expected a positive integer")
        return int(env)
    return physical_cores()
