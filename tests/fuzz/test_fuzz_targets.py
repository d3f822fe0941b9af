"""Every parser of outside data, fuzzed for a bounded time (issue 17).

Each target runs in its own process (``fuzz_harness.py``), with Hypothesis
(structure-aware mutations of valid files) and, where it is installed, atheris
(coverage-guided, with the same structure-aware mutations as a custom mutator).

Time: ``VIEWFINDER_FUZZ_SECONDS`` per target (default 6), split between the engines,
so the default run of the 10 targets costs about 2 CPU-minutes. Any crash fails the
test with the saved input's path; turn it into a named test in
``test_fuzz_regressions.py``. ``VIEWFINDER_FUZZ_REPORT=FILE`` appends one JSON line
per run (inputs, outcomes, coverage) for the closing note of a fuzzing campaign.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_registry import TARGETS

HARNESS = Path(__file__).with_name("fuzz_harness.py")
ENGINES = ["hypothesis"] + (["atheris"] if importlib.util.find_spec("atheris") else [])


def _seconds() -> float:
    text = os.environ.get("VIEWFINDER_FUZZ_SECONDS", "6")
    try:
        total = float(text)
    except ValueError:
        pytest.fail(f"VIEWFINDER_FUZZ_SECONDS={text!r}: expected seconds per target")
    return max(1.0, total / len(ENGINES))


def _coverage(log: str) -> dict[str, int]:
    """libFuzzer's last status line: executions, covered edges, features, corpus size."""
    found = re.findall(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)", log)
    if not found:
        return {}
    runs, cov, ft, corp = (int(v) for v in found[-1])
    return {"runs": runs, "cov": cov, "ft": ft, "corpus": corp}


def _artifacts(out: Path) -> list[Path]:
    """libFuzzer's own artifacts: native crashes, timeouts, out-of-memory."""
    return sorted(p for p in out.iterdir()
                  if re.fullmatch(r"(crash|timeout|oom|leak|slow-unit)-[0-9a-f]{40}", p.name))


def _report(stats: dict, out: Path) -> str:
    lines = [f"{stats.get('target')} ({stats.get('engine')}): "
             f"{len(stats.get('crashes', []))} crash(es) after {stats.get('inputs')} inputs"]
    for txt in sorted(out.glob("crash-*.txt")):
        lines.append(f"--- input {txt.with_suffix('.bin')}\n" + txt.read_text()[-3000:])
    return "\n".join(lines)


@pytest.mark.fuzz
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target(name: str, engine: str, tmp_path: Path) -> None:
    seconds = _seconds()
    out = tmp_path / "out"
    cmd = [sys.executable, str(HARNESS), name, "--engine", engine, "--seconds", str(seconds),
           "--out", str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=seconds * 3 + 120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} ({engine}): the harness ran past {seconds * 3 + 120:.0f} s")
    log = proc.stdout + proc.stderr
    stats_file = out / "stats.json"
    if not stats_file.exists():
        pytest.fail(f"{name} ({engine}): no stats (exit {proc.returncode}):\n{log[-4000:]}")
    stats = json.loads(stats_file.read_text())
    stats.update(_coverage(log), returncode=proc.returncode)
    if os.environ.get("VIEWFINDER_FUZZ_REPORT"):
        with open(os.environ["VIEWFINDER_FUZZ_REPORT"], "a") as fh:
            fh.write(json.dumps(stats) + "\n")
    if stats.get("skipped"):
        pytest.skip(f"{name}: {stats['skipped']}")
    assert not stats.get("harness_errors"), stats["harness_errors"]
    assert not stats["crashes"], _report(stats, out)
    native = _artifacts(out)
    assert not native, f"{name} ({engine}): native crash, input {native[0]}:\n{log[-4000:]}"
    assert proc.returncode == 0, (f"{name} ({engine}): exit {proc.returncode}, last input "
                                  f"{out / 'current.bin'}\n{log[-4000:]}")
    assert stats["inputs"] >= stats.get("seeds", 0), f"{name} ({engine}): the seeds did not all run"
