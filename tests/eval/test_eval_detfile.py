"""Detection files: JSON lines and devkit comp4 files, round trips and malformed input."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewfinder.errors import FormatError, InputFileError
from viewfinder.eval.detfile import DetectionRecord, read_detections, write_comp4, write_jsonl

RECORDS = [DetectionRecord("000001", "dog", 0.9, (48.0, 240.0, 195.0, 371.0)),
           DetectionRecord("000002", "cat", 0.25, (1.0, 1.0, 10.0, 12.5)),
           DetectionRecord("000002", "dog", 0.5, (5.0, 6.0, 7.0, 8.0))]


def test_jsonl_round_trip_converts_coordinates(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", RECORDS)
    assert '"box": [47.0, 239.0, 195.0, 371.0]' in path.read_text().splitlines()[0]
    assert read_detections(path) == RECORDS


def test_comp4_round_trip_per_class(tmp_path: Path) -> None:
    paths = write_comp4(tmp_path, "test", RECORDS)
    assert sorted(p.name for p in paths) == ["comp4_det_test_cat.txt", "comp4_det_test_dog.txt"]
    got = read_detections(tmp_path)
    assert sorted(got) == sorted(RECORDS)
    assert read_detections(tmp_path / "comp4_det_test_cat.txt") == [RECORDS[1]]


@pytest.mark.parametrize(("name", "content", "match"), [
    ("d.jsonl", "", "detections file is empty"),
    ("comp4_det_test_dog.txt", "", "detections file is empty"),
    ("d.jsonl", '{"image_id": "1", "score": 1, "box": [1, 2, 3, 4]}\n', r"d.jsonl:1: .*'label'"),
    ("d.jsonl", '{"image_id": "1", "label": "a", "score": 1, "box": [1, 2]}\n', "4"),
    ("d.jsonl", "\nnot json\n", r"d.jsonl:2"),
    ("comp4_det_test_dog.txt", "0001 0.5 1 2 3\n", r":1: expected '<image_id>"),
    ("comp4_det_test_dog.txt", "0001 high 1 2 3 4\n", "must be numbers"),
    ("dets.txt", "0001 0.5 1 2 3 4\n", "cannot tell the class"),
])
def test_malformed_files(tmp_path: Path, name: str, content: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(FormatError, match=match):
        read_detections(path)


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(InputFileError):
        read_detections(tmp_path / "nope.jsonl")
    with pytest.raises(FormatError, match="no devkit detection files"):
        read_detections(tmp_path)
    assert read_detections(_write(tmp_path / "x.txt", "1 0.5 1 2 3 4\n"), label="dog")[0].label \
        == "dog"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
