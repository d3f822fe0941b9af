"""Faults: a worker SIGKILLed mid-run has its unit retried once on another worker, then
reported as failed; a corrupt photo fails alone; nothing partial is left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from scale_helpers import KillerSpec, kill_on, make_victim, tree

from viewfinder.errors import WorkerError
from viewfinder.scale import Lost, map_units

pytestmark = pytest.mark.xdist_group("scale-pool")


def test_map_units_retries_a_killed_worker_and_keeps_order(tmp_path) -> None:
    marker = str(tmp_path / "died")
    units = [(v, marker) for v in ("a", "b", "die", "c", "d")]
    assert list(map_units(kill_on, units, workers=2)) == ["aa", "bb", "diedie", "cc", "dd"]
    assert Path(marker).exists()  # the worker really died once


@pytest.mark.parametrize(("on_lost", "expected"), [
    ("yield", ["aa", Lost("signal 9"), "cc"]),
    ("raise", WorkerError),
])
def test_map_units_reports_a_unit_that_kills_every_worker(tmp_path, on_lost, expected) -> None:
    units = [(v, str(tmp_path / "m")) for v in ("a", "always", "c")]
    results = map_units(kill_on, units, workers=2, on_lost=on_lost)
    if isinstance(expected, list):
        assert list(results) == expected
    else:
        with pytest.raises(expected, match="died on every try"):
            list(results)


@pytest.mark.parametrize(("workers", "on_lost", "message"), [
    (2, "ignore", "on_lost 'ignore'"),
])
def test_map_units_bad_arguments(workers, on_lost, message) -> None:
    from viewfinder.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        list(map_units(kill_on, [], workers=workers, on_lost=on_lost))


def test_map_units_serial_when_one_worker(tmp_path) -> None:
    units = [("x", str(tmp_path / "m"))]
    assert list(map_units(kill_on, units, workers=1)) == ["xx"]


@pytest.fixture(scope="session")
def fault_inputs(inputs, tmp_path_factory) -> Path:
    """photos/ plus ``victim.jpg`` (the image a killer task dies on), sorted in the middle."""
    folder = tmp_path_factory.mktemp("fault-photos")
    for p in sorted(inputs["photos"].iterdir()):
        shutil.copy(p, folder / p.name)
    make_victim(folder / "000000000026-victim.jpg")
    return folder


@pytest.fixture(scope="session")
def serial_run(fault_inputs, tmp_path_factory) -> dict:
    from viewfinder.media.sources import open_source
    from viewfinder.runner import run
    from viewfinder.sinks import open_sinks
    from viewfinder.tasks import build_task

    tmp = tmp_path_factory.mktemp("fault-serial")
    source = open_source(fault_inputs)
    task = build_task("detect", "yolov3-tiny", backend="ort")
    report = run(task, source, open_sinks(source, tmp / "out", tmp / "r.jsonl"))
    return {"report": report, "json": (tmp / "r.jsonl").read_bytes(), "tree": tree(tmp / "out")}


def _pool(fault_inputs: Path, tmp: Path, marker: str | None, chunk: int = 0):
    from viewfinder.media.sources import open_source
    from viewfinder.scale import run_pool

    spec = KillerSpec("detect", "yolov3-tiny", {"backend": "ort", "marker": marker})
    report = run_pool(spec, open_source(fault_inputs), workers=2, threads=1, chunk=chunk,
                      out=tmp / "out", json_path=tmp / "r.jsonl")
    return report, (tmp / "r.jsonl").read_bytes(), tree(tmp / "out")


def test_killed_worker_is_retried_and_the_outputs_match_serial(fault_inputs, serial_run,
                                                                tmp_path) -> None:
    report, js, files = _pool(fault_inputs, tmp_path, str(tmp_path / "died-once"))
    assert (tmp_path / "died-once").exists()
    assert (report.retried, report.lost) == (1, 0)
    assert js == serial_run["json"]
    assert files == serial_run["tree"]  # no stray temporary file of the killed worker
    assert [f.where for f in report.failures] == [f.where for f in serial_run["report"].failures]
    assert len(report.failures) == 1 and report.failures[0].where.endswith("broken.jpg")


def test_unit_that_always_kills_is_reported_and_the_run_goes_on(fault_inputs, serial_run,
                                                                 tmp_path) -> None:
    report, js, files = _pool(fault_inputs, tmp_path, None, chunk=1)
    assert report.lost == 1 and report.retried == 1
    where = [Path(f.where).name for f in report.failures]
    assert where == ["000000000026-victim.jpg", "broken.jpg"]  # input order
    assert "died on every try (signal 9)" in report.failures[0].message
    assert report.images == serial_run["report"].images - 1
    expected = [line for line in serial_run["json"].decode().splitlines()
                if "victim" not in line]
    assert js.decode().splitlines() == expected
    assert files == {k: v for k, v in serial_run["tree"].items() if "victim" not in k}
