"""Shared benchmark helpers: host description and robust timing."""

from __future__ import annotations

import importlib
import platform
import statistics
import time
from collections.abc import Callable, Sequence

__all__ = ["cpu_flags", "describe_host", "median_ms", "time_calls", "versions"]

_FLAGS_OF_INTEREST = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw",
                      "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    """The SIMD-related CPU flags of this host (from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in _FLAGS_OF_INTEREST if f in have]
    except OSError:
        pass
    return []


def _model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(packages: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``packages`` (missing ones read 'not installed')."""
    out = {}
    for name in packages:
        try:
            mod = importlib.import_module(name)
            out[name] = str(getattr(mod, "__version__", "?"))
        except ImportError:
            out[name] = "not installed"
    return out


def describe_host(packages: Sequence[str]) -> str:
    """A header: CPU model, core count, SIMD flags, Python and library versions."""
    import os

    libs = ", ".join(f"{k} {v}" for k, v in versions(packages).items())
    return (
        f"host: {_model_name()}, {os.cpu_count()} cores, flags: {' '.join(cpu_flags())}\n"
        f"python {platform.python_version()}; {libs}"
    )


def time_calls(fn: Callable[[], object], repeat: int, warmup: int = 2) -> list[float]:
    """Call ``fn`` ``warmup`` + ``repeat`` times; return the timed durations in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median_ms(times: Sequence[float]) -> float:
    """Median of durations in seconds, as milliseconds."""
    return statistics.median(times) * 1e3
