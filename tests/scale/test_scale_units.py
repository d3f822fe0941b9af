"""Work units, the in-order merge, thread shares and option checks (no worker started)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from viewfinder.errors import ConfigError, InputFileError
from viewfinder.media.sources import Entry, Failure, Origin, Source
from viewfinder.runner import RunReport
from viewfinder.scale import ScaleOptions, check_scale
from viewfinder.scale.merge import Merger
from viewfinder.scale.threads import ENV_VARS, share, worker_env
from viewfinder.scale.units import plan_units
from viewfinder.structures import Detections


def _source(kinds: str) -> Source:
    """``"iiv"`` -> two images and a video, as entries (nothing is opened)."""
    kind = {"i": "image", "v": "video", "c": "camera"}
    return Source([Entry(kind[k], f"/in/{n}.{'jpg' if k == 'i' else 'mp4'}", "/in")
                   for n, k in enumerate(kinds)])


@pytest.mark.parametrize(("kinds", "workers", "chunk", "sizes"), [
    ("iiiiiiii", 2, 0, [1] * 8),  # 8 images on 2 workers: at least 4 units each
    ("i" * 40, 2, 0, [5] * 8),
    ("i" * 100, 2, 0, [8] * 12 + [4]),  # at most 8 per unit
    ("iivii", 1, 0, [1, 1, 1, 1, 1]),
    ("iiiviiiv", 1, 3, [3, 1, 3, 1]),  # a chunk never crosses a video, a video is alone
    ("vv", 4, 0, [1, 1]),
])
def test_plan_units_chunks_stills_and_keeps_videos_whole(kinds, workers, chunk, sizes) -> None:
    source = _source(kinds)
    units = plan_units(source, workers, chunk=chunk)
    assert [len(u.source.entries) for u in units] == sizes
    assert [e for u in units for e in u.source.entries] == source.entries  # input order
    assert [u.uid for u in units] == list(range(len(units)))
    assert all(len(u.source.entries) == 1 for u in units if u.source.streams)


def test_plan_units_live_streams_are_not_retried_and_bad_chunk() -> None:
    units = plan_units(_source("ic"), 2)
    assert [u.retries for u in units] == [1, 0]
    with pytest.raises(ConfigError, match="chunk -1"):
        plan_units(_source("i"), 2, chunk=-1)


def test_plan_units_gives_each_unit_its_part_of_the_annotated_sink(tmp_path) -> None:
    from viewfinder.sinks import AnnotatedSink

    source = Source([Entry("image", f"/in/{n}.jpg", "/in", f"{n}.jpg") for n in "abc"])
    sink = AnnotatedSink(tmp_path / "out", source)
    units = plan_units(source, 1, sink=sink, chunk=2)
    assert [sorted(u.sink.targets()) for u in units] == [["/in/a.jpg", "/in/b.jpg"],
                                                         ["/in/c.jpg"]]
    assert units[1].sink.targets()["/in/c.jpg"] == tmp_path / "out" / "c.jpg"


def _rec(name: str, stream: str | None = None, frame: int | None = None, n: int = 1):
    origin = Origin("/in", None if stream else f"/in/{name}", stream, frame,
                    None if frame is None else frame / 25, 10, 10)
    dets = Detections(np.tile([[0, 0, 5, 5]], (n, 1)), np.full(n, 0.5), names=("x",))
    return origin, dets


class _Lines:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def write_record(self, record: dict) -> None:
        self.records.append(record)


def test_merger_writes_in_input_order_and_skips_a_retry_s_repeats() -> None:
    sink, report, ticks = _Lines(), RunReport(), []
    m = Merger(3, sink, report, progress=lambda d, t: ticks.append(d), total=6)
    m.part(2, [_rec("c")])
    m.end(2, [Failure("/in", "/in/z.jpg", "bad")])
    assert sink.records == []  # unit 0 has not ended: later units wait
    m.part(0, [_rec("", "v.mp4", 0), _rec("", "v.mp4", 1)])
    assert [r["frame"] for r in sink.records] == [0, 1]  # the first unit streams
    m.retry(0)  # its worker died: the re-run sends every record again
    m.part(0, [_rec("", "v.mp4", 0), _rec("", "v.mp4", 1), _rec("", "v.mp4", 2)])
    m.end(0, [], {"detector_runs": 3})
    m.part(1, [_rec("b", n=2)])
    m.end(1, [])
    assert [r["frame"] for r in sink.records] == [0, 1, 2, None, None]
    assert [r["path"] for r in sink.records[3:]] == ["/in/b", "/in/c"]
    assert (report.images, report.frames, report.detections) == (2, 3, 6)
    assert report.streams == {"v.mp4": 3}
    assert [f.where for f in report.failures] == ["/in/z.jpg"]
    assert m.finished and ticks[-1] == 6


def test_merger_lost_unit_reports_only_inputs_without_records() -> None:
    sink, report = _Lines(), RunReport()
    m = Merger(1, sink, report)
    m.part(0, [_rec("a")])
    m.lost(0, [Failure("/in", "/in/a", "died"), Failure("/in", "/in/b", "died")])
    assert [f.where for f in report.failures] == ["/in/b"]
    assert len(sink.records) == 1 and m.finished


@pytest.mark.parametrize(("workers", "threads", "cores", "expected"), [
    (2, 0, 2, 1), (3, 0, 2, 1), (2, 0, 8, 4), (1, 0, 6, 6), (4, 2, 2, 2),
])
def test_share_splits_the_cores(workers, threads, cores, expected) -> None:
    assert share(workers, threads, cores) == expected


def test_worker_env_is_set_for_children_and_restored(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    with worker_env(3):
        assert all(os.environ[k] == "3" for k in ENV_VARS)
    assert os.environ["OMP_NUM_THREADS"] == "7" and "NUMBA_NUM_THREADS" not in os.environ


@pytest.mark.parametrize(("options", "json_path", "error", "message"), [
    (ScaleOptions(2, "spark"), None, ConfigError, "--engine spark"),
    (ScaleOptions(2, format="csv"), None, ConfigError, "--format csv"),
    (ScaleOptions(2, address="auto"), None, ConfigError, "--address: only with --engine ray"),
    (ScaleOptions(2, format="parquet"), "r/", ConfigError, "--format parquet"),
    (ScaleOptions(2), "DIR/", InputFileError, "a folder of shards needs --engine ray"),
    (ScaleOptions(-1), None, ConfigError, "--workers -1"),
])
def test_check_scale_refuses_before_work(options, json_path, error, message) -> None:
    with pytest.raises(error, match=message):
        check_scale(options, _source("ii"), None, json_path)


def test_check_scale_refuses_live_sources_on_workers() -> None:
    with pytest.raises(ConfigError, match="cameras and URLs run in one process"):
        check_scale(ScaleOptions(2), _source("ic"))
    check_scale(ScaleOptions(1), _source("ic"))  # serial: fine


@pytest.mark.parametrize(("path", "expected"), [
    ("-", False), ("r.jsonl", False), ("out/", True), (None, False),
])
def test_results_dir(path, expected, tmp_path) -> None:
    from viewfinder.scale.ray_engine import is_results_dir

    assert is_results_dir(path) is expected
    assert is_results_dir(tmp_path) is True


def test_cli_refuses_bad_scale_options_in_one_line(run_cli, shared, tmp_path) -> None:
    image = shared / "images" / "dog.jpg"
    code, _, err = run_cli("detect", image, "--workers", "2", "--address", "auto")
    assert code == 2 and err.strip() == "error: --address: only with --engine ray"
    code, _, err = run_cli("detect", image, "--workers", "2", "--json", tmp_path)
    assert code == 2 and "a folder of shards needs --engine ray" in err
    code, _, err = run_cli("faces", image, "--workers", "2", "--profile")
    assert code == 2 and "--profile times one process" in err


@pytest.mark.parametrize(("version", "key"), [
    ((2, 8), "compute"), ((2, 9), "concurrency"), ((2, 50), "concurrency"),
    ((2, 51), "compute"), ((2, 60), "compute"),
])
def test_ray_compat_actor_pool_argument_by_version(monkeypatch, version, key) -> None:
    pytest.importorskip("ray.data", reason="ray is not installed (pip install "
                                           "'viewfinder[ray]')")
    from viewfinder.scale import ray_compat

    monkeypatch.setattr(ray_compat, "version", lambda: version)
    args = ray_compat.actor_pool_args(3)
    assert list(args) == [key]
    if key == "concurrency":
        assert args[key] == 3
    else:
        assert args[key].min_size == args[key].max_size == 3


def test_parquet_rows_keep_every_record(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (the ray extra) is missing")
    from viewfinder.scale.ray_engine import write_parquet

    write_parquet(tmp_path / "p.parquet", [_rec("a", n=2), _rec("", "v.mp4", 4, n=0)])
    rows = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert [r["count"] for r in rows] == [2, 0]
    assert rows[0]["labels"] == ["x", "x"] and rows[0]["boxes"][0] == [0, 0, 5, 5]
    assert rows[1]["frame"] == 4 and rows[1]["path"] is None and rows[1]["detections"] == "[]"
