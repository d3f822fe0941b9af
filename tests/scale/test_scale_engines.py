"""Serial vs the process pool, through the CLI: byte-identical JSON lines in input
order, the same annotated files, exit codes and failure lines; threads pinned in
each worker, read back from its live sessions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scale_helpers import failure_lines, tree

pytestmark = pytest.mark.xdist_group("scale-pool")


def _counts(out: str) -> str:
    """The summary line without its timing."""
    line = [s for s in out.splitlines() if " in " in s and "/s)" in s][-1]
    return re.sub(r" in [0-9.]+ s \([0-9.]+/s\)", "", line)


def _run(run_cli, tmp: Path, name: str, args: list, extra: list) -> dict:
    out, js = tmp / f"{name}-out", tmp / f"{name}.jsonl"
    code, stdout, err = run_cli(*args, "--out", out, "--json", js, *extra)
    return {"code": code, "json": js.read_bytes(), "tree": tree(out), "failed": failure_lines(err),
            "summary": _counts(stdout), "err": err}


DETECT = ["--model", "yolov3-tiny", "--backend", "ort", "--max-frames", "6"]
FACES = ["--backend", "openvino", "--max-frames", "8"]


@pytest.fixture(scope="session")
def detect_runs(run_cli_module, inputs, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("detect")
    args = ["detect", inputs["photos"], inputs["clip"], *DETECT]
    return {"serial": _run(run_cli_module, tmp, "serial", args, []),
            "pool": _run(run_cli_module, tmp, "pool", args, ["--workers", "2"])}


@pytest.fixture(scope="session")
def faces_runs(run_cli_module, inputs, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("faces")
    args = ["faces", inputs["group"], inputs["clip"], *FACES]
    return {"serial": _run(run_cli_module, tmp, "serial", args, []),
            "pool": _run(run_cli_module, tmp, "pool", args, ["--workers", "2"])}


@pytest.fixture(scope="session")
def run_cli_module():
    """The CLI in-process (session scope: each run is shared by several tests, and is not
    made again when xdist interleaves other modules' tests)."""
    import contextlib
    import io

    from viewfinder.cli import main

    def _run(*args: object) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        return code, out.getvalue(), err.getvalue()

    return _run


FIELDS = ("code", "json", "tree", "failed", "summary")


def _same(serial: dict, pool: dict) -> list[str]:
    """The fields in which the pool's run differs from the serial one."""
    return [f for f in FIELDS if pool[f] != serial[f]]


# One test per run (not one per field): xdist may place tests of one module on both
# workers, and each would then make the runs again.
def test_detect_pool_gives_the_serial_outputs(detect_runs) -> None:
    serial, pool = detect_runs["serial"], detect_runs["pool"]
    assert _same(serial, pool) == [], pool["err"][-2000:]
    assert serial["code"] == 1  # the truncated photo failed alone, the run went on
    assert len(serial["failed"]) == 1 and "broken.jpg" in serial["failed"][0]
    assert "5 images, 6 frames of 1 stream" in serial["summary"]
    assert sorted(serial["tree"]) == ["000000000009.jpg", "000000000025.jpg",
                                      "000000000030.jpg", "000000000034.jpg",
                                      "000000000036.jpg", "clip.mp4"]
    lines = serial["json"].decode().splitlines()
    assert len(lines) == 11 and '"frame":null' in lines[0] and '"frame":5' in lines[-1]


def test_faces_pool_gives_the_serial_outputs_and_tracks_the_video_in_one_worker(
        faces_runs) -> None:
    serial, pool = faces_runs["serial"], faces_runs["pool"]
    assert serial["code"] == 0
    assert _same(serial, pool) == [], pool["err"][-2000:]
    lines = pool["json"].decode().splitlines()
    assert len(lines) == 9  # group.jpg, then 8 frames of the clip, in order
    assert '"track_id"' in lines[-1]


def test_workers_threads_are_pinned_and_read_back(inputs) -> None:
    """Two workers on any host: one thread each in ORT, OpenVINO, OpenCV, numba and BLAS,
    as the live objects report them (every worker that started; the sessions of those
    that ran a unit, since OpenVINO compiles on first use)."""
    from viewfinder.media.sources import open_source
    from viewfinder.scale import run_pool
    from viewfinder.tasks import TaskSpec

    source = open_source([inputs["group"]] * 6)  # faces in every unit
    spec = TaskSpec("faces", None, {"backend": "openvino", "landmarks": "2d106det"})
    report = run_pool(spec, source, workers=2, threads=1, chunk=1)
    assert report.workers == 2 and report.threads == 1
    assert 1 <= len({w["pid"] for w in report.worker_threads}) <= 2
    compiled = 0
    for w in report.worker_threads:
        assert w["cv2"] == 1
        assert w["numba"] in (None, 1)
        assert all(b["num_threads"] == 1 for b in w["blas"])
        assert len(w["sessions"]) >= 2  # detector + landmarks
        for s in w["sessions"]:
            assert s["backend"] == "openvino"
            if s["inference_threads"]:
                assert set(s["inference_threads"]) == {1}
                compiled += 1
    assert compiled >= 2  # at least one worker's detector and landmarker, read back


def test_ort_sessions_report_their_threads(inputs) -> None:
    from viewfinder.media.sources import open_source
    from viewfinder.scale import run_pool
    from viewfinder.tasks import TaskSpec

    source = open_source([inputs["photos"] / "000000000009.jpg",
                          inputs["photos"] / "000000000025.jpg"])
    report = run_pool(TaskSpec("detect", "yolov3-tiny", {"backend": "ort"}), source,
                      workers=2, threads=1, chunk=1)
    assert report.images == 2
    for w in report.worker_threads:
        [s] = w["sessions"]
        assert (s["backend"], s["intra_op"], s["inter_op"]) == ("ort", 1, 1)
