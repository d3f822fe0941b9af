"""``viewfinder eval voc`` on a small hand-made VOC set."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from viewfinder.datasets.voc import Annotation, VOCObject, VOCWriter
from viewfinder.eval.detfile import DetectionRecord, write_comp4, write_jsonl


@pytest.fixture()
def voc(tmp_path: Path) -> Path:
    w = VOCWriter(tmp_path / "VOC2007")
    w.add("a", None, Annotation(100, 80, (VOCObject("dog", (1, 1, 10, 10)),
                                          VOCObject("dog", (51, 41, 80, 70), difficult=True))))
    w.add("b", None, Annotation(100, 80, (VOCObject("dog", (21, 21, 40, 40)),)))
    w.add("c", None, Annotation(100, 80, ()))
    w.write_split("test", ["a", "b", "c"], ["dog"])
    return tmp_path


RECORDS = [DetectionRecord("a", "dog", 0.9, (1, 1, 10, 10)),
           DetectionRecord("c", "dog", 0.8, (1, 1, 10, 10)),
           DetectionRecord("b", "dog", 0.7, (21, 21, 40, 40)),
           DetectionRecord("a", "dog", 0.6, (51, 41, 80, 70))]


@pytest.mark.parametrize(("fmt", "year", "ap"), [
    ("jsonl", 2007, (6 + 5 * 2 / 3) / 11), ("comp4", 2007, (6 + 5 * 2 / 3) / 11),
    ("jsonl", 2012, 0.5 + 0.5 * 2 / 3),
])
def test_eval_voc_reports_devkit_ap(run_cli, voc: Path, tmp_path: Path, fmt: str, year: int,
                                    ap: float) -> None:
    if fmt == "jsonl":
        det = write_jsonl(tmp_path / "d.jsonl", RECORDS)
    else:
        det = tmp_path / "dets"
        det.mkdir()
        write_comp4(det, "test", RECORDS)
    code, out, err = run_cli("eval", "voc", "--detections", det, "--voc", voc / "VOC2007",
                             "--year", year, "--json", tmp_path / "r.json",
                             "--pr-curve", tmp_path / "pr.png")
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["classes"]["dog"]["ap"] == pytest.approx(ap)
    assert result["classes"]["dog"]["objects"] == 2 and "mAP" in out
    assert cv2.imread(str(tmp_path / "pr.png")).shape == (600, 800, 3)


@pytest.mark.parametrize(("content", "match"), [
    ("", "detections file is empty"),
    ('{"image_id": "zz", "label": "dog", "score": 1, "box": [0, 0, 5, 5]}\n',
     "image zz is not in the evaluated set"),
])
def test_eval_voc_bad_input_exits_2(run_cli, voc: Path, tmp_path: Path, content: str,
                                    match: str) -> None:
    det = tmp_path / "d.jsonl"
    det.write_text(content)
    code, _, err = run_cli("eval", "voc", "--detections", det, "--voc", voc / "VOC2007",
                           "--pr-curve", tmp_path / "pr.png")
    assert code == 2 and match in err and err.count("\n") == 1
    assert not (tmp_path / "pr.png").exists()


def test_eval_voc_missing_dataset(run_cli, tmp_path: Path) -> None:
    det = write_jsonl(tmp_path / "d.jsonl", RECORDS)
    code, _, err = run_cli("eval", "voc", "--detections", det, "--voc", tmp_path / "nope")
    assert code == 2 and "does not exist" in err
