"""``viewfinder dpm detect`` and ``show-model`` end to end, and their bad-input exits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.mark.slow
def test_detect_writes_pictures_and_json_lines(run_cli, shared: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(shared / "images" / "person_horse_dog.jpg", src)
    cv2.imwrite(str(src / "gray.png"), np.zeros((40, 30), np.uint8))  # too small: no detections
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    code, out, err = run_cli("dpm", "detect", src, "--model", "VOC2007_person", "--score",
                             "0", "--out", tmp_path / "out", "--json", tmp_path / "d.jsonl")
    assert code == 1 and f"failed: {src / 'broken.jpg'}" in err  # finished, with one failure
    assert "person_horse_dog.jpg: 2 detection(s)" in out and "gray.png: 0 detection(s)" in out
    records = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [r["image_id"] for r in records] == ["gray", "person_horse_dog"]
    dets = records[1]["detections"]
    assert [d["label"] for d in dets] == ["person", "person"] and records[0]["detections"] == []
    assert dets[0]["score"] > 1 and len(dets[0]["parts"]) == 9
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gray.png",
                                                                    "person_horse_dog.jpg"]


def test_show_model_writes_a_png(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("dpm", "show-model", "VOC2007_bicycle", "-o", tmp_path / "m.png",
                           "--cell", 8)
    assert code == 0 and "bicycle: 6 components" in out
    assert cv2.imread(str(tmp_path / "m.png")).shape[2] == 3


@pytest.mark.parametrize(("args", "match"), [
    (("dpm", "detect", "{tmp}/missing.jpg"), "missing.jpg: no such image"),
    (("dpm", "detect", "{img}", "--model", "VOC2007_unicorn", "--json", "{tmp}/d.jsonl"),
     "DPM model 'VOC2007_unicorn'"),
    (("dpm", "detect", "{img}", "--model", "{tmp}/fake.mat", "--json", "{tmp}/d.jsonl"),
     "not a MATLAB .mat file"),
    (("dpm", "detect", "{img}", "--json", "{tmp}/nodir/d.jsonl"), "does not exist"),
    (("dpm", "show-model", "{tmp}/fake.mat", "-o", "{tmp}/m.png"), "not a MATLAB .mat file"),
])
def test_bad_input_is_one_line_and_exit_2(run_cli, shared: Path, tmp_path: Path, args: tuple,
                                          match: str) -> None:
    (tmp_path / "fake.mat").write_text("hello")
    fill = {"tmp": tmp_path, "img": shared / "images" / "dog.jpg"}
    code, _, err = run_cli(*(a.format(**fill) for a in args))
    assert code == 2 and match in err and err.count("\n") == 1
    assert not (tmp_path / "d.jsonl").exists() and not (tmp_path / "m.png").exists()
