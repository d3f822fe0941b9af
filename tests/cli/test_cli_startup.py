"""Start-up of the CLI: what listing and running commands imports (never timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Packages that cost 0.1-1 s each to import and that listing commands must not load.
HEAVY = ("numba", "scipy", "onnx", "openvino", "onnxruntime", "torch", "cv2", "av", "numpy")

_PROBE = r"""
import contextlib, io, json, sys
from viewfinder.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _probe(args: list[str], cache: Path) -> dict:
    """Run the CLI in a fresh interpreter; its exit code, stdout and imported modules."""
    env = {**os.environ, "VIEWFINDER_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], env=env, capture_output=True,
                          text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _heavy(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


@pytest.mark.parametrize("args", [["--help"], ["dpm", "--help"], ["faces", "--help"],
                                  ["detect", "--help"], ["--version"]])
def test_listing_and_help_import_no_heavy_package(tmp_path: Path, args: list[str]) -> None:
    result = _probe(args, tmp_path)
    assert result["code"] == 0
    assert _heavy(result["modules"]) == []
    assert not any(m.startswith("viewfinder.dpm") for m in result["modules"])


def test_top_level_help_lists_every_command(tmp_path: Path) -> None:
    out = _probe(["--help"], tmp_path)["out"]
    for name in ("media", "models", "convert", "bench", "faces", "detect", "dpm", "eval"):
        assert f"  {name} " in out, name


def test_dpm_training_commands_are_built_when_used(tmp_path: Path) -> None:
    listing = _probe(["dpm", "--help"], tmp_path)["out"]
    assert "train" in listing and "Train a deformable part model" in listing
    assert "eval" in listing and "Held-out AP" in listing
    own = _probe(["dpm", "train", "--help"], tmp_path)
    assert own["code"] == 0
    # the TrainParams options are there: building the command read the library
    assert "--components" in own["out"] and "-C, --c" in own["out"]
    assert "viewfinder.dpm.train.params" in own["modules"]


def test_deferred_short_help_is_the_real_commands() -> None:
    import click

    from viewfinder.cli.dpm_train import register

    group = click.Group("dpm")
    register(group)
    for name in ("train", "eval"):
        deferred = group.commands[name]
        real = deferred.real  # type: ignore[attr-defined]
        assert deferred.get_short_help_str(80) == real.get_short_help_str(80)
        assert real.params and real.callback is not None


def test_faces_on_a_photo_needs_no_onnx_once_cached(shared: Path, tmp_path: Path) -> None:
    """The first run makes the landmark net's converted copies (that needs onnx) and
    measures; a later run reads the input shapes and precision from the files directly
    and finds its decisions in the cache: no onnx, no landmark batching trial."""
    args = ["faces", str(shared / "images/group_t1.jpg"), "--json", "-"]
    first = _probe(args, tmp_path)
    second = _probe(args, tmp_path)
    assert first["code"] == second["code"] == 0
    assert "onnx" not in {m.split(".")[0] for m in second["modules"]}
    assert "viewfinder.runtime.convert" not in second["modules"]

    def faces(result: dict) -> list:
        return [json.loads(line) for line in result["out"].splitlines()
                if line.startswith("{")]

    _same_faces(faces(first), faces(second))


def _same_faces(a: list[dict], b: list[dict]) -> None:
    """The same records; coordinates to 0.01 px (a first run may run the landmark net
    statically compiled, a later one dynamically: 1e-7 apart before rounding)."""
    import numpy as np

    assert len(a) == len(b) == 1 and len(a[0]["detections"]) == len(b[0]["detections"]) > 0
    for da, db in zip(a[0]["detections"], b[0]["detections"], strict=True):
        assert da.keys() == db.keys() and da["label"] == db["label"]
        for key in ("box", "keypoints", "landmarks", "score"):
            np.testing.assert_allclose(np.asarray(db[key]), np.asarray(da[key]), atol=0.01)


def _program(args: list[str], cache: Path, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m viewfinder`` as the program (the fast exit applies)."""
    return subprocess.run([sys.executable, "-m", "viewfinder", *args], capture_output=True,
                          text=True, check=False, timeout=300,
                          env={**os.environ, "VIEWFINDER_CACHE": str(cache), **env})


@pytest.mark.parametrize(("args", "code", "stream", "text"), [
    (["--help"], 0, "stdout", "Vision pipelines for production"),
    (["--version"], 0, "stdout", "viewfinder, version"),
    (["no-such-command"], 2, "stderr", "No such command"),
    (["dpm", "detect", "/no/such/image.jpg"], 2, "stderr", "error: "),
])
def test_program_exit_codes_and_output_survive_the_fast_exit(tmp_path: Path, args, code,
                                                             stream, text) -> None:
    for clean in ("", "1"):  # fast exit, and the ordinary one
        proc = _program(args, tmp_path, VIEWFINDER_CLEAN_EXIT=clean)
        assert proc.returncode == code, proc.stderr[-500:]
        assert text in getattr(proc, stream)


def test_program_output_is_whole_after_the_fast_exit(shared: Path, tmp_path: Path) -> None:
    out = tmp_path / "faces.jsonl"
    proc = _program(["faces", str(shared / "images/group_t1.jpg"), "--json", str(out)],
                    tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-500:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    stdout = _program(["faces", str(shared / "images/group_t1.jpg"), "--json", "-"],
                      tmp_path / "cache").stdout
    _same_faces(records, [json.loads(x) for x in stdout.splitlines() if x.startswith("{")])
