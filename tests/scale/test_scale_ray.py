"""``--engine ray`` on a real local Ray (2 CPUs, no dashboard): the serial outputs,
sharded JSON lines and Parquet, an actor killed mid-run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from scale_helpers import KillerSpec, make_victim, tree

pytest.importorskip("ray.data", reason="ray is not installed: pip install 'viewfinder[ray]' "
                                       "to run the Ray engine tests")
pytestmark = [pytest.mark.xdist_group("scale-ray"), pytest.mark.slow]

ARGS = ["--model", "yolov3-tiny", "--backend", "ort", "--max-frames", "4"]


@pytest.fixture(scope="session")
def ray_inputs(inputs, tmp_path_factory) -> Path:
    """Three photos (one truncated) and the victim image, as one folder."""
    folder = tmp_path_factory.mktemp("ray-photos")
    for name in ("000000000009.jpg", "000000000030.jpg", "broken.jpg"):
        shutil.copy(inputs["photos"] / name, folder / name)
    make_victim(folder / "000000000020-victim.jpg")
    return folder


@pytest.fixture(scope="session")
def serial(ray_inputs, inputs, tmp_path_factory) -> dict:
    from viewfinder.media.sources import open_source
    from viewfinder.runner import run
    from viewfinder.sinks import open_sinks
    from viewfinder.tasks import build_task

    tmp = tmp_path_factory.mktemp("ray-serial")
    source = open_source([ray_inputs, inputs["clip"]], max_frames=4)
    task = build_task("detect", "yolov3-tiny", backend="ort")
    report = run(task, source, open_sinks(source, tmp / "out", tmp / "r.jsonl"))
    return {"report": report, "json": (tmp / "r.jsonl").read_bytes(), "tree": tree(tmp / "out"),
            "source": source, "spec": task.spec}


def _to_a_file_with_a_killed_actor(serial: dict, tmp_path: Path) -> None:
    from viewfinder.scale.ray_engine import run_ray

    marker = tmp_path / "died"
    spec = KillerSpec("detect", "yolov3-tiny", {"backend": "ort", "marker": str(marker)})
    report = run_ray(spec, serial["source"], workers=2, out=str(tmp_path / "out"),
                     json_path=str(tmp_path / "r.jsonl"))
    assert marker.exists()  # an actor was SIGKILLed; Ray restarted it and retried its unit
    assert (tmp_path / "r.jsonl").read_bytes() == serial["json"]
    assert tree(tmp_path / "out") == serial["tree"]
    assert [f.where for f in report.failures] == [f.where for f in serial["report"].failures]
    assert report.lost == 0 and report.engine == "ray" and report.workers == 2
    for w in report.worker_threads:
        assert [(s["intra_op"], s["inter_op"]) for s in w["sessions"]] == [(1, 1)]
        assert w["cv2"] == 1


def _cli_shards(serial: dict, sources: list, run_cli, tmp_path: Path) -> None:
    results = tmp_path / "results"
    code, _, err = run_cli("detect", *sources, *ARGS, "--engine", "ray", "--workers", "2",
                           "--json", f"{results}/")
    assert code == 1 and "broken.jpg" in err  # the truncated photo, as in a serial run
    shards = sorted(results.iterdir())
    assert all(p.name.startswith("part-") and p.suffix == ".jsonl" for p in shards)
    assert b"".join(p.read_bytes() for p in shards) == serial["json"]
    assert not list(tmp_path.glob(".results.partial-*"))


def _cli_parquet(serial: dict, sources: list, run_cli, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    results = tmp_path / "pq"
    code, _, _ = run_cli("detect", *sources, *ARGS, "--engine", "ray", "--workers", "2",
                         "--json", f"{results}/", "--format", "parquet")
    assert code == 1
    rows = [r for p in sorted(results.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    lines = [json.loads(s) for s in serial["json"].decode().splitlines()]
    assert [(r["path"], r["frame"], r["count"]) for r in rows] == [
        (r["path"], r["frame"], len(r["detections"])) for r in lines]
    assert [json.loads(r["detections"]) for r in rows] == [r["detections"] for r in lines]


# One test (not one per output kind): xdist may place tests of one module on both of its
# workers, and each would then start a Ray of its own.
def test_ray_engine_outputs_and_a_killed_actor(local_ray, serial, ray_inputs, inputs, run_cli,
                                               tmp_path) -> None:
    sources = [ray_inputs, inputs["clip"]]
    for name in ("file", "shards", "parquet"):
        (tmp_path / name).mkdir()
    _to_a_file_with_a_killed_actor(serial, tmp_path / "file")
    _cli_shards(serial, sources, run_cli, tmp_path / "shards")
    _cli_parquet(serial, sources, run_cli, tmp_path / "parquet")
