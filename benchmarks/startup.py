"""Start-up: whole-process wall and CPU time of the CLI on one input, against a baseline.

Run: ``.venv/bin/python benchmarks/startup.py [--rounds 5] [--tree before=/tmp/old/src]``

Each command is a fresh process; the rounds run every command of every tree under both
settings of ``PYTHONDONTWRITEBYTECODE`` (machines here set it: then no ``.pyc`` is
written and every process compiles the package's sources again) interleaved in one
loop, so that the host's load hits all alike. Wall time around ``subprocess.run``; CPU
time (user + system, all threads) from ``getrusage(RUSAGE_CHILDREN)`` deltas. Medians.

* ``baseline``: ``python -c "import numpy, cv2, onnxruntime"``, what any vision CLI in
  Python pays before doing anything;
* ``help``: ``viewfinder --help`` (target: at most 0.3 s over the baseline);
* ``faces``: ``viewfinder faces group_t1.jpg --json -`` (target: 1.0 s whole process);
* ``dpm``: ``viewfinder dpm detect`` on one 500x332 coco256-voc image (target: 1.0 s).

Warm caches are measured (one warm-up run of each command fills the ``auto`` backend
decision, the OpenVINO model cache, numba's cache and, without the flag, ``.pyc``);
``--cold`` adds one run of each on an empty ``VIEWFINDER_CACHE`` (first use on a host).
``--tree LABEL=SRC`` adds another source tree (e.g. ``git archive HEAD | tar -x -C
/tmp/old`` for a before/after) to the same loop, through ``PYTHONPATH``.

Last, later calls in one process (``--no-stalls`` skips, ``--stalls-only`` runs just
that): a face pipeline on an empty cache (``backend`` auto, then openvino, whose
compiles are the point) runs the group photo and its two halves in turn; no call after
the first of each may take much longer than that photo's median (a compile on the
request path would).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_host  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from viewfinder.config import shared_dir  # noqa: E402

SHARED = shared_dir()
FACES_IMAGE = SHARED / "images" / "group_t1.jpg"
DPM_IMAGE = SHARED / "data" / "coco256-voc" / "JPEGImages" / "000000000359.jpg"  # 500x332
BASELINE = "import numpy, cv2, onnxruntime"
#: Target seconds: (over the baseline, or whole process).
TARGETS = {"help": ("over baseline", 0.3), "faces": ("whole", 1.0), "dpm": ("whole", 1.0)}
PACKAGES = ("numpy", "cv2", "onnxruntime", "openvino", "numba", "scipy", "click", "rich")


def commands() -> dict[str, list[str]]:
    """The measured command lines (``python -m viewfinder`` = the ``viewfinder`` script)."""
    vf = [sys.executable, "-m", "viewfinder"]
    return {
        "baseline": [sys.executable, "-c", BASELINE],
        "help": [*vf, "--help"],
        "faces": [*vf, "faces", str(FACES_IMAGE), "--json", "-"],
        "dpm": [*vf, "dpm", "detect", str(DPM_IMAGE)],
    }


def environment(cache: Path, src: Path | None, no_bytecode: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["VIEWFINDER_CACHE"] = str(cache)
    env.setdefault("VIEWFINDER_MODELS", str(SHARED / "models"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """``(wall s, CPU s)`` of one process; a failing command stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {' | '.join(tail)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


Key = tuple[str, str, str]  # (tree, bytecode setting, command)


def measure(trees: dict[str, Path | None], rounds: int, cache_root: Path
            ) -> dict[Key, list[tuple[float, float]]]:
    """Warm up, then ``rounds`` interleaved rounds of every (tree, setting, command)."""
    cmds = commands()
    runs: list[tuple[Key, list[str], dict[str, str]]] = []
    for tree, src in trees.items():
        cache = cache_root / tree
        for flag in (True, False):
            setting = "PYTHONDONTWRITEBYTECODE=1" if flag else "bytecode written"
            for name, cmd in cmds.items():
                if name == "baseline" and tree != next(iter(trees)):
                    continue  # one baseline is enough
                runs.append(((tree, setting, name), cmd, environment(cache, src, flag)))
    for _, cmd, env in runs:  # warm-up: caches, numba, .pyc
        run_once(cmd, env)
    times: dict[Key, list[tuple[float, float]]] = {key: [] for key, _, _ in runs}
    for r in range(rounds):
        for key, cmd, env in runs:
            times[key].append(run_once(cmd, env))
        print(f"  round {r + 1}/{rounds} done (load {os.getloadavg()[0]:.1f})", flush=True)
    return times


def cold(trees: dict[str, Path | None], cache_root: Path) -> dict[tuple[str, str], tuple]:
    """One run of each command per tree on an empty cache (first use on a host)."""
    out = {}
    for tree, src in trees.items():
        for name, cmd in commands().items():
            if name == "baseline":
                continue
            cache = cache_root / f"cold-{tree}-{name}"
            shutil.rmtree(cache, ignore_errors=True)
            out[(tree, name)] = run_once(cmd, environment(cache, src, True))
    return out


def report(times: dict[Key, list[tuple[float, float]]]) -> list[dict]:
    """Print the table of medians; return its rows."""
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in times.items()}
    base = next(v for k, v in med.items() if k[2] == "baseline")
    rows = []
    print(f"\n{'tree':8s} {'setting':26s} {'command':9s} {'wall s':>7s} {'CPU s':>7s} "
          f"{'wall-base':>9s}  target")
    for (tree, setting, name), (wall, cpu) in med.items():
        target = ""
        if name in TARGETS:
            kind, limit = TARGETS[name]
            value = wall - base[0] if kind == "over baseline" else wall
            target = f"{'ok ' if value <= limit else 'MISS'} ({kind} <= {limit} s)"
        print(f"{tree:8s} {setting:26s} {name:9s} {wall:7.3f} {cpu:7.3f} "
              f"{wall - base[0]:+9.3f}  {target}")
        rows.append({"tree": tree, "setting": setting, "command": name, "wall_s": wall,
                     "cpu_s": cpu, "n": len(times[(tree, setting, name)])})
    return rows


def stalls(cache: Path, tree: str, src: Path | None, backend: str) -> None:
    """Later calls of one face pipeline (empty cache): slowest vs median per photo."""
    code = r"""
import json, sys, time
import cv2
from viewfinder.faces import FacePipeline
img = cv2.imread(sys.argv[1])
h, w = img.shape[:2]
photos = {"group": img, "left half": img[:, : w // 2].copy(), "right half": img[:, w // 2:].copy()}
pipe = FacePipeline(backend=sys.argv[2])
times = {k: [] for k in photos}
counts = {}
for _ in range(8):
    for name, im in photos.items():
        t0 = time.perf_counter()
        counts[name] = len(pipe(im))
        times[name].append(time.perf_counter() - t0)
print(json.dumps({"times": times, "counts": counts, "models": pipe.describe()}))
"""
    env = environment(cache, src, True)
    shutil.rmtree(cache, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", code, str(FACES_IMAGE), backend], env=env,
                          capture_output=True, text=True, check=True)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nlater calls of one FacePipeline(backend={backend!r}), tree {tree} (empty cache; "
          "ms; first call excluded):")
    for name, series in data["times"].items():
        later = [t * 1e3 for t in series[1:]]
        median = statistics.median(later)
        print(f"  {name} ({data['counts'][name]} faces): first {series[0] * 1e3:7.1f}  "
              f"median {median:6.1f}  slowest {max(later):6.1f} "
              f"({max(later) / median:.1f}x median)  calls: "
              + " ".join(f"{t:.0f}" for t in later))
    for line in data["models"]:
        print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="Timed rounds (median).")
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=SRC",
                        help="Another source tree to run side by side (via PYTHONPATH).")
    parser.add_argument("--cold", action="store_true", help="Also one run on empty caches.")
    parser.add_argument("--no-stalls", action="store_true", help="Skip the later-call check.")
    parser.add_argument("--stalls-only", action="store_true", help="Only the later-call check.")
    parser.add_argument("--json", type=Path, help="Also write the medians here.")
    args = parser.parse_args()
    print(describe_host(PACKAGES))
    print(f"load average {os.getloadavg()[0]:.1f}; faces: {FACES_IMAGE.name}; "
          f"dpm: {DPM_IMAGE.name}")
    trees: dict[str, Path | None] = {"this": None}
    for item in args.tree:
        label, _, src = item.partition("=")
        trees[label] = Path(src).resolve()
    with tempfile.TemporaryDirectory(prefix="vf-startup-") as tmp:
        root = Path(tmp)
        if not args.stalls_only:
            rows = report(measure(trees, args.rounds, root))
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
        if args.cold and not args.stalls_only:
            print("\none run on an empty cache (PYTHONDONTWRITEBYTECODE=1): wall s, CPU s")
            for (tree, name), (wall, cpu) in cold(trees, root).items():
                print(f"  {tree:8s} {name:9s} {wall:7.3f} {cpu:7.3f}")
        if not args.no_stalls:
            for tree, src in trees.items():
                for backend in ("auto", "openvino"):  # OpenVINO: the compiles
                    stalls(root / f"stalls-{tree}-{backend}", tree, src, backend)


if __name__ == "__main__":
    main()
