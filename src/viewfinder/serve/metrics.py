"""The service's metrics in the Prometheus text format (version 0.0.4), kept by hand.

=====================================  =========  ======================================
name                                   type       labels
=====================================  =========  ======================================
``viewfinder_requests_total``          counter    ``task``, ``code`` (HTTP status)
``viewfinder_request_seconds``         histogram  ``task`` (accepted requests, end to end)
``viewfinder_images_total``            counter    ``task`` (images through the model)
``viewfinder_batch_size``              histogram  ``task`` (images per model call)
``viewfinder_batch_seconds``           histogram  ``task`` (time of one batch)
``viewfinder_queue_depth``             gauge      ``task`` (images waiting)
``viewfinder_inflight_images``         gauge      ``task`` (images in the running batch)
``viewfinder_rejections_total``        counter    ``task``, ``reason`` (queue_full,
                                                  not_ready, body_too_large,
                                                  too_many_pixels, bad_image,
                                                  bad_request, internal)
``viewfinder_ready``                   gauge      (1 once the models are warm)
=====================================  =========  ======================================
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable

__all__ = ["LATENCY_BUCKETS", "Metrics"]

#: Request latency buckets (seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
_BATCH_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + text + "}" if text else ""


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    return repr(float(v)) if isinstance(v, float) and not float(v).is_integer() else str(int(v))


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name: str, labels: tuple[tuple[str, str], ...]) -> list[str]:
        out, total = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            total += count
            le = "+Inf" if bound == float("inf") else _num(bound)
            out.append(f"{name}_bucket{_labels((*labels, ('le', le)))} {total}")
        out.append(f"{name}_sum{_labels(labels)} {self.sum!r}")
        out.append(f"{name}_count{_labels(labels)} {total}")
        return out


class Metrics:
    """Counters and histograms of one service (thread-safe).

    Args:
        gauges: ``() -> {task: (queue depth, images in flight)}``, read at each scrape.
    """

    def __init__(self, gauges: Callable[[], dict[str, tuple[int, int]]] | None = None) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.rejections: dict[tuple[str, str], int] = {}
        self.images: dict[str, int] = {}
        self.latency: dict[str, _Histogram] = {}
        self.batches: dict[str, _Histogram] = {}
        self.batch_time: dict[str, _Histogram] = {}
        self.gauges = gauges or dict
        self.ready = False

    def request(self, task: str, code: int, seconds: float | None = None) -> None:
        """Count one answered request (and its latency when it was accepted)."""
        with self._lock:
            key = (task, int(code))
            self.requests[key] = self.requests.get(key, 0) + 1
            if seconds is not None:
                self.latency.setdefault(task, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def reject(self, task: str, reason: str) -> None:
        """Count one refused request."""
        with self._lock:
            self.rejections[(task, reason)] = self.rejections.get((task, reason), 0) + 1

    def batch(self, task: str, size: int, seconds: float) -> None:
        """Count one model batch."""
        with self._lock:
            self.images[task] = self.images.get(task, 0) + size
            self.batches.setdefault(task, _Histogram(_BATCH_BUCKETS)).observe(size)
            self.batch_time.setdefault(task, _Histogram(_BATCH_SECONDS)).observe(seconds)

    def render(self) -> str:
        """Everything, in the Prometheus text format."""
        with self._lock:
            lines = ["# HELP viewfinder_ready 1 once the models are loaded and warm.",
                     "# TYPE viewfinder_ready gauge", f"viewfinder_ready {int(self.ready)}"]
            lines += self._counter("viewfinder_requests_total", "Requests answered, by status.",
                                   {(("task", t), ("code", str(c))): v
                                    for (t, c), v in sorted(self.requests.items())})
            lines += self._counter("viewfinder_rejections_total", "Requests refused, by reason.",
                                   {(("task", t), ("reason", r)): v
                                    for (t, r), v in sorted(self.rejections.items())})
            lines += self._counter("viewfinder_images_total", "Images through the models.",
                                   {(("task", t),): v for t, v in sorted(self.images.items())})
            for name, help_text, table in (
                    ("viewfinder_request_seconds", "Accepted requests, arrival to answer.",
                     self.latency),
                    ("viewfinder_batch_size", "Images per model batch.", self.batches),
                    ("viewfinder_batch_seconds", "Time of one model batch.", self.batch_time)):
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
                for task, hist in sorted(table.items()):
                    lines += hist.lines(name, (("task", task),))
        gauges = self.gauges()
        for i, (name, help_text) in enumerate((
                ("viewfinder_queue_depth", "Images waiting for a batch."),
                ("viewfinder_inflight_images", "Images in the batch being run."))):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            lines += [f"{name}{_labels((('task', t),))} {v[i]}" for t, v in sorted(gauges.items())]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _counter(name: str, help_text: str, values: dict[tuple[tuple[str, str], ...], int]
                 ) -> list[str]:
        return [f"# HELP {name} {help_text}", f"# TYPE {name} counter",
                *(f"{name}{_labels(k)} {v}" for k, v in values.items())]
