"""Runtime benchmarks: bench overhead, backend x precision, threads, IO binding.

Run: ``.venv/bin/python benchmarks/runtime.py [--quick]``. Everything is interleaved
in one process (the peers alternate call by call or block by block), medians are
reported, and the host's CPU flags and library versions head the output.

1. ``viewfinder bench``'s loop against a bare ``onnxruntime.InferenceSession.run``
   loop on the same model (target: <= 2 % overhead).
2. ONNX Runtime vs OpenVINO at every precision the host can run, on the face models
   of issue 9, with output deltas against f32 ONNX Runtime.
3. Thread settings: intra-op threads 1 vs 2, and idle-thread spinning on/off, alone
   and with two sessions alternating (detector + landmarks, as the face pipeline runs).
4. ONNX Runtime IO binding (pre-bound output buffers) against plain ``run``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_host  # noqa: E402
from viewfinder.runtime import zoo  # noqa: E402
from viewfinder.runtime.base import Session  # noqa: E402
from viewfinder.runtime.bench import run_bench  # noqa: E402
from viewfinder.runtime.session import load_session  # noqa: E402

MODELS = [("scrfd_500m", (1, 3, 640, 640)), ("2d106det", (1, 3, 192, 192)),
          ("scrfd_2.5g", (1, 3, 640, 640))]


def _feeds(name: str, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    sess = load_session(zoo.resolve(name))
    x = np.random.default_rng(0).random(shape, dtype=np.float32) * 255
    return {sess.inputs[0].name: x}


def _raw_ort(path: Path, threads: int = 2, spin: bool = False):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class _NullSession(Session):
    """A session whose run does nothing: isolates the cost of the bench loop itself."""

    backend, device, path = "null", "none", "null"
    inputs: list = []
    outputs: list = []

    def run(self, feeds):
        return []


def _tiny_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _per_call_costs(n: int = 20000) -> tuple[float, float]:
    """Seconds per call of (a) the bench loop around a no-op run, (b) the Session wrapper."""
    null = _NullSession()
    samples = [("x", {"x": np.zeros(1, np.float32)})]
    loop = min(statistics.median(
        _timed(lambda: run_bench(null, samples, loop=n, warmup=0)) for _ in range(5)) / n, 1.0)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = _tiny_model(Path(tmp) / "id.onnx")
        raw, ours = _raw_ort(path), load_session(path)
        feeds = {"x": np.zeros(1, np.float32)}
        diffs = []
        for _ in range(7):
            a = _timed(lambda: [raw.run(None, feeds) for _ in range(2000)])
            b = _timed(lambda: [ours.run(feeds) for _ in range(2000)])
            diffs.append((b - a) / 2000)
    return loop, max(0.0, statistics.median(diffs))


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_overhead(blocks: int, calls: int) -> None:
    """Bench loop vs bare ort loop: measured directly, and decomposed per call."""
    loop_s, wrap_s = _per_call_costs()
    print("\n## 1. bench overhead vs a bare session.run loop")
    print(f"per call: bench loop {loop_s * 1e6:.2f} us (timing, bookkeeping), "
          f"Session wrapper {wrap_s * 1e6:.2f} us (feeds dict, checks)")
    print(f"{'model':<12} {'bare ms/call':>13} {'bench ms/call':>14} {'direct':>8} "
          f"{'per-call estimate':>18}   ({blocks} alternating blocks of {calls} calls)")
    for name, shape in (("2d106det", (1, 3, 192, 192)), ("ultraface", (1, 3, 240, 320))):
        bare, ours = _overhead_blocks(name, shape, blocks, calls)
        b, o = statistics.median(bare) / calls, statistics.median(ours) / calls
        direct = statistics.median([(y - x) / x for x, y in zip(bare, ours, strict=True)])
        est = (loop_s + wrap_s) / min(bare) * calls
        print(f"{name:<12} {b * 1e3:>13.3f} {o * 1e3:>14.3f} {direct * 100:>7.2f}% "
              f"{est * 100:>17.3f}%")


def _overhead_blocks(name: str, shape: tuple[int, ...], blocks: int, calls: int
                     ) -> tuple[list[float], list[float]]:
    path = zoo.resolve(name)
    feeds = _feeds(name, shape)
    raw, sess = _raw_ort(path), load_session(path)
    samples = [("x", feeds)]
    for _ in range(5):
        raw.run(None, feeds)
        sess.run(feeds)
    bare, ours = [], []
    for _ in range(blocks):
        bare.append(_timed(lambda: [raw.run(None, feeds) for _ in range(calls)]))
        ours.append(_timed(lambda: run_bench(sess, samples, loop=calls, warmup=0)))
    return bare, ours


def _interleave(runs: dict[str, object], feeds: dict[str, np.ndarray], n: int
                ) -> dict[str, float]:
    """Median ms per call of each run, interleaved call by call."""
    return {k: statistics.median(v) * 1e3 for k, v in _interleave_raw(runs, feeds, n).items()}


def _interleave_raw(runs: dict[str, object], feeds: dict[str, np.ndarray], n: int
                    ) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        for _ in range(3):
            fn(feeds)
    for _ in range(n):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn(feeds)
            times[k].append(time.perf_counter() - t0)
    return times


_COLUMNS = ("ort f32", "ov f32", "ov bf16", "ov fp16", "ort f32 1T", "ov f32 1T")


def _table_sessions(path: Path, shape: tuple[int, ...]
                    ) -> tuple[dict[str, object], dict[str, str]]:
    from viewfinder.errors import ViewfinderError

    shapes = {load_session(path).inputs[0].name: shape}
    sessions = {"ort f32": load_session(path, backend="ort"),
                "ort f32 1T": load_session(path, backend="ort", threads=1)}
    notes = {}
    for precision, threads in (("f32", 2), ("bf16", 2), ("fp16", 2), ("f32", 1)):
        key = f"ov {precision}" + (" 1T" if threads == 1 else "")
        try:
            sessions[key] = load_session(path, backend="openvino", precision=precision,
                                         threads=threads, shapes=shapes)
        except ViewfinderError as exc:
            notes[f"ov {precision}"] = str(exc)
    return sessions, notes


def backend_table(n: int) -> None:
    """ORT vs OpenVINO x precision on the issue's face models, with output deltas.

    The 1-thread columns compare the kernels alone: on a host shared with other jobs
    they are less sensitive to threads waiting for each other.
    """
    print(f"\n## 2. backend x precision, 2 threads (1T: 1 thread), {n} interleaved runs "
          "(ms; median, and min = the cost when other jobs leave the cores free)")
    print("inputs: scrfd 1x3x640x640, 2d106det 1x3x192x192; max|d| = ov f32 vs ort f32")
    print(f"{'model':<11} {'statistic':<12} " + " ".join(f"{c:>10}" for c in _COLUMNS)
          + f" {'ov/ort 2T':>9} {'ov/ort 1T':>9} {'max|d| ov':>10}")
    notes: dict[str, str] = {}
    for name, shape in MODELS:
        sessions, more = _table_sessions(zoo.resolve(name), shape)
        notes.update(more)
        feeds = _feeds(name, shape)
        ref, got = sessions["ort f32"].run(feeds), sessions["ov f32"].run(feeds)
        delta = max(float(np.abs(a - b).max()) for a, b in zip(ref, got, strict=True))
        raw = _interleave_raw({k: s.run for k, s in sessions.items()}, feeds, n)
        for label, stat in (("median", statistics.median), ("min", min)):
            med = {k: stat(v) * 1e3 for k, v in raw.items()}
            cells = [f"{med[k]:>10.2f}" if k in med else f"{'n/a':>10}" for k in _COLUMNS]
            print(f"{name:<11} {label:<12} {' '.join(cells)} "
                  f"{med['ort f32'] / med['ov f32']:>8.2f}x "
                  f"{med['ort f32 1T'] / med['ov f32 1T']:>8.2f}x {delta:>10.2e}")
    for k, v in sorted(notes.items()):
        print(f"  {k}: {v}")


def pipeline(n: int) -> None:
    """The face pipeline's model work: SCRFD-0.5GF at 640 + six 2d106det crops, per backend."""
    from viewfinder.errors import ViewfinderError

    print(f"\n## 2b. face pipeline models (scrfd_500m 640 + 6x 2d106det), median of {n}")
    fd, fl = _feeds("scrfd_500m", (1, 3, 640, 640)), _feeds("2d106det", (1, 3, 192, 192))
    combos = {"ort": ("ort", "ort"), "openvino": ("openvino", "openvino"),
              "ort det + ov lmk": ("ort", "openvino")}
    runs = {}
    for label, (bdet, blmk) in combos.items():
        try:
            det = load_session(zoo.resolve("scrfd_500m"), backend=bdet,
                               shapes={"input.1": (1, 3, 640, 640)})
            lmk = load_session(zoo.resolve("2d106det"), backend=blmk)
        except ViewfinderError as exc:
            print(f"{label}: n/a ({exc})")
            continue

        def frame(_f, det=det, lmk=lmk):
            det.run(fd)
            for _ in range(6):
                lmk.run(fl)

        runs[label] = frame
    raw = _interleave_raw(runs, fd, n)
    for label, stat in (("median", statistics.median), ("min", min)):
        med = {k: stat(v) * 1e3 for k, v in raw.items()}
        print(f"{label:<7}" + "  ".join(f"{k} {v:.2f} ms" for k, v in med.items())
              + "  -> vs ort: " + ", ".join(f"{k} {med['ort'] / v:.2f}x"
                                            for k, v in med.items() if k != "ort"))


def thread_settings(n: int) -> None:
    """Intra-op threads and spinning, alone and with two sessions alternating."""
    print(f"\n## 3. ONNX Runtime threads and spinning (median of {n}, ms per call)")
    det, lmk = zoo.resolve("scrfd_500m"), zoo.resolve("2d106det")
    fd, fl = _feeds("scrfd_500m", (1, 3, 640, 640)), _feeds("2d106det", (1, 3, 192, 192))
    configs = {f"intra={t} spin={'on' if s else 'off'}": (t, s) for t in (1, 2)
               for s in (False, True)}
    print(f"{'setting':<22} {'scrfd_500m':>11} {'2d106det':>9} {'pipeline det+6 lmk':>19}")
    for label, (t, s) in configs.items():
        sd, sl = _raw_ort(det, t, s), _raw_ort(lmk, t, s)
        alone_d = _interleave({"d": lambda f, s_=sd: s_.run(None, f)}, fd, n)["d"]
        alone_l = _interleave({"l": lambda f, s_=sl: s_.run(None, f)}, fl, n)["l"]

        def pipeline(_f, sd=sd, sl=sl):
            sd.run(None, fd)
            for _ in range(6):
                sl.run(None, fl)

        pipe = _interleave({"p": pipeline}, fd, max(5, n // 3))["p"]
        print(f"{label:<22} {alone_d:>11.2f} {alone_l:>9.2f} {pipe:>19.2f}")


def io_binding(n: int) -> None:
    """Plain run vs run_with_iobinding with pre-bound CPU outputs."""
    print(f"\n## 4. ONNX Runtime IO binding (median of {n} interleaved, ms)")
    for name, shape in (("2d106det", (1, 3, 192, 192)), ("scrfd_500m", (1, 3, 640, 640))):
        sess = _raw_ort(zoo.resolve(name))
        feeds = _feeds(name, shape)
        binding = sess.io_binding()
        binding.bind_cpu_input(next(iter(feeds)), next(iter(feeds.values())))
        for out in sess.get_outputs():
            binding.bind_output(out.name, "cpu")

        def bound(_f, b=binding, s=sess):
            s.run_with_iobinding(b)
            return b.copy_outputs_to_cpu()

        med = _interleave({"run": lambda f, s=sess: s.run(None, f), "iobinding": bound},
                          feeds, n)
        print(f"{name:<12} run {med['run']:.3f}  iobinding {med['iobinding']:.3f}  "
              f"ratio {med['run'] / med['iobinding']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (smoke test)")
    args = parser.parse_args()
    n = 9 if args.quick else 40
    print(describe_host(["onnxruntime", "openvino", "numpy"]))
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at start: {load} (other jobs share this host)")
    bench_overhead(blocks=3 if args.quick else 11, calls=20 if args.quick else 60)
    backend_table(n)
    pipeline(n)
    thread_settings(n)
    io_binding(n)
    print("\nload average at end: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
