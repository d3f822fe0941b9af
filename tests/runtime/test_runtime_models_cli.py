"""``viewfinder models list | info | fetch | verify``."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest


@pytest.mark.parametrize(("args", "expect"), [
    (("models", "list"), ["scrfd_500m", "dpm/VOC2007_person", "yolov3-tiny"]),
    (("models", "list", "--task", "face-landmarks"), ["2d106det"]),
    (("models", "info", "2d106det"), ["192x192", "RGB", "5a6d69e3", "huggingface.co", "fc1"]),
    (("models", "info", "dpm/VOC2007_car"), ["voc-release5.tgz", "member VOC2007/car_final.mat"]),
    (("models", "verify", "ultraface"), ["face/ultraface_rfb_320.onnx: ok"]),
    (("models", "fetch", "yolov3-tiny"), ["yolov3-tiny.weights:", "coco.names:"]),
])
def test_models_commands(shared: Path, run_cli, args: tuple[str, ...], expect: list[str]
                         ) -> None:
    code, out, err = run_cli(*args)
    assert code == 0, err
    for part in expect:
        assert part in out


def test_list_filters_by_task(shared: Path, run_cli) -> None:
    code, out, _ = run_cli("models", "list", "--task", "dpm")
    assert code == 0 and "scrfd" not in out and out.count("dpm/") == 21


def test_verify_all_reports_each_local_file(shared: Path, run_cli) -> None:
    code, out, _ = run_cli("models", "verify")
    assert code == 0
    assert out.count(": ok") >= 30 and "scrfd_10g" not in out  # absent files are skipped


def test_verify_reports_a_corrupt_file_and_exits_1(tmp_path: Path, run_cli,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ultraface_rfb_320.onnx").write_bytes(b"x" * 1270727)
    monkeypatch.setenv("VIEWFINDER_MODELS", str(tmp_path))
    code, out, _ = run_cli("models", "verify", "ultraface")
    assert code == 1 and "FAILED" in out and "sha256" in out


@pytest.mark.parametrize(("args", "match"), [
    (("models", "info", "scrfd500m"), "did you mean scrfd_500m"),
    (("models", "list", "--task", "faces"), "expected one of detection, dpm, face-detection"),
    (("models", "verify", "scrfd_10g"), "not available locally"),
    (("models", "fetch", "scrfd_10g"), "put the file at <dir>/face/scrfd_10g_bnkps.onnx"),
])
def test_models_errors_are_one_line_exit_2(run_cli, monkeypatch: pytest.MonkeyPatch,
                                           args: tuple[str, ...], match: str) -> None:
    def offline(*a, **k):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    code, out, err = run_cli(*args)
    assert code == 2 and match in err and err.count("\n") == 1
