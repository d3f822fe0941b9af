"""Run one fuzz target for a bounded time, in its own process.

    python tests/fuzz/fuzz_harness.py TARGET --engine hypothesis|atheris --seconds 5 --out DIR

Writes ``DIR/stats.json`` (inputs executed, outcomes, coverage where atheris reports
it) and, per distinct crash, ``DIR/crash-N.bin`` (the input, the smallest seen) and
``DIR/crash-N.txt`` (signature and traceback). Limits, per input: ``input_seconds``
of the target (a watchdog thread ends the process and keeps the input as a hang) and
a memory budget (``--memory-mb`` of RSS growth over the warmed-up process, and an
address-space limit so that a huge allocation fails at once as a MemoryError).
Crashes listed in ``fuzz_registry.KNOWN`` (each with an xfail regression test) are
counted, not reported.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_core import Chooser, Target, check_one, mutate  # noqa: E402
from fuzz_registry import KNOWN, TARGETS, shared_or_none  # noqa: E402


def _status_kb(key: str) -> int:
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def signature(exc: BaseException) -> str:
    """``Type @ viewfinder/pkg/mod.py``: the innermost viewfinder file of the traceback
    (the file, not the function, so a signature outlives refactoring inside the file)."""
    from fuzz_core import PropertyViolation

    if isinstance(exc, PropertyViolation):  # an invalid result: named by what is wrong
        return f"PropertyViolation @ {str(exc).split(':')[0]}"
    where = "?"
    for fr in traceback.extract_tb(exc.__traceback__):
        name = fr.filename.replace(os.sep, "/")
        if "/src/viewfinder/" in name or "/site-packages/viewfinder/" in name:
            where = "viewfinder/" + name.split("/viewfinder/")[-1]
    return f"{type(exc).__name__} @ {where}"


class Harness:
    """One target's run: the property per input, the records, the limits."""

    def __init__(self, target: Target, out: Path, memory_mb: int) -> None:
        self.target, self.out, self.memory_mb = target, out, memory_mb
        self.workdir = Path(tempfile.mkdtemp(prefix=f"vf-fuzz-{target.name}-"))
        self.count, self.outcomes = 0, {}
        self.crashes: dict[str, tuple[bytes, str]] = {}
        self.known: dict[str, int] = {}
        self.current: tuple[float, bytes] | None = None
        self.baseline_kb = 0
        self._last_stats = 0.0
        self.extra: dict[str, object] = {}
        self.save_current = False
        self.child: int | None = None

    # ------------------------------------------------------------------ one input
    def run_one(self, data: bytes) -> str | None:
        """Run one input; returns the signature of a crash (None when the property held)."""
        for p in self.workdir.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        if self.save_current:  # a native crash kills the process: keep the input first
            (self.out / "current.bin").write_bytes(data)
        self.current = (time.monotonic(), data)
        if self.target.isolate:
            return self._run_forked(data)
        try:
            outcome = check_one(self.target, data, self.workdir)
        except Exception as exc:  # the property failed: record and report
            sig = signature(exc)
            self.current = None
            self.count += 1
            return self._record(sig, data, exc)
        self.current = None
        self.count += 1
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self._maybe_stats()
        return None

    def _run_forked(self, data: bytes) -> str | None:
        """One input in a child process: a native crash there is a signature, not the end."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run, report one JSON line, leave without cleanup
            os.close(r)
            try:
                reply = ["ok", check_one(self.target, data, self.workdir)]
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                reply = ["crash", signature(exc), "".join(
                    traceback.format_exception(type(exc), exc, exc.__traceback__))]
            os.write(w, json.dumps(reply).encode())
            os._exit(0)
        os.close(w)
        self.child = pid
        with os.fdopen(r, "rb") as fh:
            raw = fh.read()
        _, status = os.waitpid(pid, 0)
        self.child, self.current = None, None
        self.count += 1
        if os.WIFSIGNALED(status):
            name = signal.Signals(os.WTERMSIG(status)).name
            return self._record(f"{name} @ {self.target.name}", data,
                                None, f"child killed by {name} (native crash)")
        kind, *rest = json.loads(raw or b'["crash", "no reply @ child", ""]')
        if kind == "ok":
            self.outcomes[rest[0]] = self.outcomes.get(rest[0], 0) + 1
            self._maybe_stats()
            return None
        return self._record(rest[0], data, None, rest[1])

    def _record(self, sig: str, data: bytes, exc: BaseException | None,
                text: str = "") -> str | None:
        if sig in KNOWN.get(self.target.name, ()):
            self.known[sig] = self.known.get(sig, 0) + 1
            return None
        if exc is not None:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        old = self.crashes.get(sig)
        if old is None or len(data) < len(old[0]):
            self.crashes[sig] = (data, f"{sig}\n\n{text}")
            self.write_stats()
        return sig

    # ------------------------------------------------------------------ limits
    def start_limits(self) -> None:
        """Address-space cap and the watchdog (hang and RSS), after the warm-up."""
        self.baseline_kb = _status_kb("VmRSS")
        vm = _status_kb("VmSize") * 1024
        cap = vm + max(4 << 30, 4 * (self.memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(0.05)
            cur = self.current
            if cur is None:
                continue
            grown = (_status_kb("VmRSS") - self.baseline_kb) >> 10
            if time.monotonic() - cur[0] > self.target.input_seconds:
                self._die("hang", cur[1], f"one input ran over {self.target.input_seconds} s")
            if grown > self.memory_mb:
                self._die("memory", cur[1], f"RSS grew {grown} MiB, budget {self.memory_mb}")

    def _die(self, kind: str, data: bytes, why: str) -> None:
        if self.child:
            os.kill(self.child, signal.SIGKILL)
        sig = f"{kind} @ {self.target.name}"
        self.crashes[sig] = (data, f"{sig}\n\n{why}")
        self.write_stats()
        os._exit(3)

    # ------------------------------------------------------------------ records
    def _maybe_stats(self) -> None:
        now = time.monotonic()
        if now - self._last_stats > 1.0:
            self._last_stats = now
            self.write_stats()

    def write_stats(self) -> None:
        for n, (_sig, (data, text)) in enumerate(sorted(self.crashes.items())):
            (self.out / f"crash-{n}.bin").write_bytes(data)
            (self.out / f"crash-{n}.txt").write_text(text + "\n")
        stats = {"target": self.target.name, "inputs": self.count, "outcomes": self.outcomes,
                 "crashes": sorted(self.crashes), "known": self.known, **self.extra}
        tmp = self.out / "stats.json.tmp"
        tmp.write_text(json.dumps(stats, indent=1))
        os.replace(tmp, self.out / "stats.json")


def run_hypothesis(h: Harness, seeds: list[bytes], seconds: float) -> None:
    """Structure-aware: each example is a seed with 1..4 field-by-field mutations."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    try:  # shrinking is capped so that a crash costs seconds, not minutes
        from hypothesis.internal.conjecture import engine

        engine.MAX_SHRINKING_SECONDS = 3
    except (ImportError, AttributeError):  # pragma: no cover - other Hypothesis versions
        pass
    end = time.monotonic() + seconds
    shrinking: set[str] = set()

    @st.composite
    def inputs(draw: object) -> bytes:
        seed = draw(st.sampled_from(seeds))  # type: ignore[operator]
        return mutate(Chooser(draw=draw), seed, h.target.ops)

    @settings(max_examples=50, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink],
              report_multiple_bugs=False)
    @given(inputs())
    def prop(data: bytes) -> None:
        if time.monotonic() > end and not shrinking:
            return
        sig = h.run_one(data)
        if sig is not None and (sig not in h.extra.setdefault("reported", []) or sig in shrinking):
            shrinking.add(sig)
            raise AssertionError(sig)

    while time.monotonic() < end:
        try:
            prop()
        except Exception as exc:  # a crash (recorded, shrunk) or Hypothesis' Flaky: go on
            if not shrinking:  # not the property: the harness or a strategy is broken
                errors = h.extra.setdefault("harness_errors", [])
                errors.append(f"{type(exc).__name__}: {exc}"[:2000])  # type: ignore[union-attr]
                if len(errors) > 3:  # type: ignore[arg-type]
                    raise
            h.extra.setdefault("reported", []).extend(shrinking)  # type: ignore[union-attr]
            shrinking.clear()


def run_atheris(h: Harness, seeds: list[bytes], seconds: float, argv0: str) -> None:
    """Coverage-guided: libFuzzer's mutations plus the target's structure-aware ones."""
    import atheris

    corpus = h.workdir.parent / f"{h.workdir.name}-corpus"
    corpus.mkdir()
    for s in seeds:
        (corpus / hashlib.sha1(s).hexdigest()).write_bytes(s)
    max_len = max(len(s) for s in seeds) * 2 + 64

    def test_one(data: bytes) -> None:
        sig = h.run_one(bytes(data))
        if sig is not None:
            raise RuntimeError(sig)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        return mutate(Chooser(rng=rng), bytes(data), h.target.ops)[:max_size]

    # libFuzzer reads the peak RSS from getrusage, which on Linux keeps the peak of the
    # process this one was forked from (a pytest worker holding models: ~2 GB): start the
    # budget from that peak, not from the current RSS
    peak_kb = max(_status_kb("VmRSS"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    rss_limit = (peak_kb >> 10) + h.memory_mb
    args = [argv0, str(corpus), f"-max_total_time={max(1, int(round(seconds)))}",
            f"-timeout={int(h.target.input_seconds) + 1}", f"-rss_limit_mb={rss_limit}",
            f"-max_len={max_len}", f"-artifact_prefix={h.out}/", "-print_final_stats=1"]
    h.write_stats()
    atheris.Setup(args, test_one, custom_mutator=custom_mutator)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("target", choices=sorted(TARGETS))
    ap.add_argument("--engine", choices=["hypothesis", "atheris"], default="hypothesis")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--memory-mb", type=int, default=1024)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    faulthandler.enable()  # a native crash prints where it happened (Python frames)
    # The memory budget holds the worst decoder at this limit: 16-bit RGBA PNG at
    # 19.1 MiB per Mpixel (docs/media.md) x 16.8 Mpixel = 320 MiB.
    os.environ.setdefault("VIEWFINDER_MAX_PIXELS", str(1 << 24))
    args.out.mkdir(parents=True, exist_ok=True)
    target = TARGETS[args.target]
    if args.engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["viewfinder"]):
            for name in target.modules:
                __import__(name)
    h = Harness(target, args.out, args.memory_mb)
    seeds = target.seeds(shared_or_none())
    h.extra.update(engine=args.engine, seeds=len(seeds), seconds=args.seconds)
    if not seeds:
        h.extra["skipped"] = "no seed inputs (the shared data directory is missing)"
        h.write_stats()
        return 0
    h.save_current = args.engine == "hypothesis"  # libFuzzer keeps its own crash inputs
    if target.isolate:  # import and JIT-compile once here, not again in every child
        with contextlib.suppress(Exception):  # the forked seed run below reports it
            check_one(target, seeds[0], h.workdir)
    for s in seeds:  # the seeds are valid files: each must pass (and warms the decoders up)
        h.run_one(s)
    h.start_limits()
    if args.engine == "atheris":
        run_atheris(h, seeds, args.seconds, sys.argv[0])
    else:
        run_hypothesis(h, seeds, args.seconds)
    h.extra.pop("reported", None)
    h.write_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main())
