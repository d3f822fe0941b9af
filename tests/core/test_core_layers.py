"""Data flows one way: every ``viewfinder`` import in the package obeys the layer table.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import
that crosses a layer is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import viewfinder

ROOT = Path(viewfinder.__file__).parent
LEAVES = {"errors", "fileio", "config", "ops", "structures", "draw"}

# package (first dotted part after ``viewfinder``) -> what it may import besides itself
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": {"errors"},
    "fileio": {"errors"},
    "ops": {"errors"},
    "structures": {"errors", "ops", "draw"},  # Detections.draw
    "draw": {"errors", "fileio"},
    "media": LEAVES,
    "runtime": LEAVES | {"media"},
    "faces": LEAVES | {"media", "runtime"},
    "detect": LEAVES | {"media", "runtime"},
    "dpm": LEAVES | {"media", "runtime"},
    "datasets": LEAVES | {"media"},  # images are decoded through media
    "eval": LEAVES | {"media", "datasets"},
    # above the tasks: what every command and the service share
    "tasks": LEAVES | {"media", "runtime", "faces", "detect", "dpm"},
    "sinks": LEAVES | {"media"},
    "runner": LEAVES | {"media", "sinks"},
    # scale-out engines: the runner per work unit; runtime for the thread budget
    "scale": LEAVES | {"media", "runtime", "sinks", "runner"},
    # the HTTP service and its client
    "serve": LEAVES | {"media", "tasks", "sinks"},
    "client": LEAVES,
}
# Training may read data sets and score AP while it trains (see docs/ARCHITECTURE.md).
TRAINING = {"dpm.train": ALLOWED["dpm"] | {"datasets", "eval"},
            "detect.train": ALLOWED["detect"] | {"datasets", "eval", "train"},
            # the generic loop (trainer, hooks, AMP policy, loss scaler) knows no task
            "train": LEAVES}


def _imports(path: Path) -> set[str]:
    """Dotted ``viewfinder.*`` modules a file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(parts[:len(parts) - node.level])
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.add(node.module)
    return {m for m in found if m == "viewfinder" or m.startswith("viewfinder.")}


def _layer(module: str) -> str:
    """``viewfinder.dpm.train.x`` -> ``dpm.train``; ``viewfinder.faces.y`` -> ``faces``."""
    parts = module.split(".")[1:]
    if parts[:2] in (["dpm", "train"], ["detect", "train"]):
        return ".".join(parts[:2])
    return parts[0] if parts else ""


def _top(layer: str) -> str:
    return layer.split(".")[0]


FILES = sorted(p for p in ROOT.rglob("*.py") if "cli" not in p.relative_to(ROOT).parts[:1])

#: The task-free part of ``scale`` (worker processes, Ray actors, thread pinning), which
#: training and evaluation use to spread their per-image work: it knows no task, runner
#: or sink (checked below), so using it does not reach above the tasks.
GENERIC_SCALE = {"viewfinder.scale.mapper", "viewfinder.scale.pool", "viewfinder.scale.threads",
                 "viewfinder.scale.ray_compat"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layers(path: Path) -> None:
    own = _layer("viewfinder." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
    if own in ("__init__", "__main__"):
        return  # the package root and ``python -m viewfinder`` start the CLI
    allowed = TRAINING.get(own, ALLOWED.get(_top(own)))
    assert allowed is not None, f"{path}: layer {own!r} missing from the table"
    bad = sorted(m for m in _imports(path)
                 if _top(_layer(m)) not in allowed | {_top(own)} and m != "viewfinder"
                 and not (own in TRAINING and m in GENERIC_SCALE))
    if own in ("dpm", "detect"):  # inference code does not import its package's training
        bad += sorted(m for m in _imports(path) if _layer(m) == f"{own}.train")
    assert not bad, f"{path.relative_to(ROOT)} ({own}) imports {bad}"


def test_nothing_imports_the_cli() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in FILES if p.name != "__main__.py"
                 and any(_top(_layer(m)) == "cli" for m in _imports(p))]
    assert offenders == []


@pytest.mark.parametrize(("module", "layer"), [
    ("viewfinder.dpm.train.stages", "dpm.train"),
    ("viewfinder.dpm.detect", "dpm"),
    ("viewfinder.detect.train.recipe", "detect.train"),
    ("viewfinder.train.trainer", "train"),
    ("viewfinder.runtime.convert.cached", "runtime"),
])
def test_layer_of_a_module(module: str, layer: str) -> None:
    assert _layer(module) == layer


def test_the_generic_scale_modules_know_no_task_runner_or_sink() -> None:
    for module in sorted(GENERIC_SCALE):
        path = ROOT / (module.split(".", 1)[1].replace(".", "/") + ".py")
        bad = sorted(m for m in _imports(path) if m not in GENERIC_SCALE
                     and _top(_layer(m)) not in LEAVES | {"runtime"})
        assert not bad, f"{module} imports {bad}"
