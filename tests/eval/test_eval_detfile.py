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


@pytest.mark.parametrize(("name", "content", "match"), [
    ("d.json", b"[" * 100_000 + b"\n", r"d.json: not a JSON array .*nested too deeply"),
    ("d.jsonl", b'{"image_id": "1", "detections": []}\n{"a": ' + b"[" * 100_000 + b"\n",
     r"d.jsonl:2: not a detection record \(JSON nested too deeply\)"),
    ("comp4_det_test_dog.txt", b"0001 0.5 1 2 3 4\n\xff\xfe\n",
     r"comp4_det_test_dog.txt: not a UTF-8 text file \(byte 17: invalid start byte\)"),
    ("d.jsonl", b'{"image_id": "\xff"}\n', r"d.jsonl: not a UTF-8 text file"),
])
def test_hostile_bytes_are_format_errors(tmp_path: Path, name: str, content: bytes,
                                         match: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FormatError, match=match) as info:
        read_detections(path)
    assert "\n" not in str(info.value)


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


def _image_record(image_id: str | None, dets: list, **extra) -> str:
    import json

    rec = {"source": "imgs/", "path": f"imgs/{image_id or 'x'}.jpg", "image_id": image_id,
           "frame": None, "time": None, "width": 100, "height": 80, "detections": dets}
    rec.update(extra)
    return json.dumps(rec)


_DOG = {"box": [47.0, 239.0, 195.0, 371.0], "score": 0.9, "label": "dog", "class_id": 16,
        "parts": [[1, 2, 3, 4]]}


def test_per_image_records_with_empty_images_and_flat_lines(tmp_path: Path) -> None:
    from viewfinder.eval.detfile import read_detection_file

    text = "\n".join([
        _image_record("000001", [_DOG]),
        _image_record("000003", []),                             # covered, no detections
        _image_record(None, [dict(_DOG, label="cat")], path="other/000004.png"),  # id = stem
        '{"image_id": "000002", "label": "dog", "score": 0.5, "box": [4, 5, 7, 8]}',
    ]) + "\n"
    found = read_detection_file(_write(tmp_path / "d.jsonl", text))
    assert found.records == [DetectionRecord("000001", "dog", 0.9, (48.0, 240.0, 195.0, 371.0)),
                             DetectionRecord("000004", "cat", 0.9, (48.0, 240.0, 195.0, 371.0)),
                             DetectionRecord("000002", "dog", 0.5, (5.0, 6.0, 7.0, 8.0))]
    assert found.images == {"000001", "000002", "000003", "000004"}


def test_json_array_of_records(tmp_path: Path) -> None:
    text = "[" + ", ".join([_image_record("a", [_DOG]), _image_record("b", [])]) + "]"
    assert [r.image_id for r in read_detections(_write(tmp_path / "d.json", text))] == ["a"]


@pytest.mark.parametrize(("line", "match"), [
    (_image_record("1", [dict(_DOG, label="")]), r"d.jsonl:1: detection 0: .*no class name"),
    (_image_record("1", [{k: v for k, v in _DOG.items() if k != "label"}]), "'label'"),
    (_image_record("1", [dict(_DOG, label=None)]), "no class name"),
    (_image_record("1", [dict(_DOG, label="16")]), "only by its class id 16"),
    ('{"image_id": "1", "label": "", "score": 1, "box": [1, 2, 3, 4]}', "no class name"),
    ('{"image_id": "1", "label": "3", "class_id": 3, "score": 1, "box": [1, 2, 3, 4]}',
     "only by its class id 3"),
    (_image_record("1", [dict(_DOG, box=[1, 2, 3])]), r"detection 0: .*3 values, expected 4"),
    (_image_record("1", [dict(_DOG, score="high")]), "detection 0: not a detection record"),
    (_image_record("1", {"box": 1}), "'detections' must be a list"),
    (_image_record("1", ["x"]), "expected an object, got str"),
    (_image_record(None, [], path=None), "without 'image_id' or 'path'"),
    ('["not", "objects"]', "not a detection record"),
    ('{"label": "dog", "score": 1, "box": [1, 2, 3, 4]}', "missing key 'image_id'"),
])
def test_malformed_records(tmp_path: Path, line: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        read_detections(_write(tmp_path / "d.jsonl", line + "\n"))


def test_a_numeric_label_with_another_class_id_is_a_name(tmp_path: Path) -> None:
    line = '{"image_id": "1", "label": "7", "class_id": 0, "score": 1, "box": [1, 2, 3, 4]}\n'
    assert read_detections(_write(tmp_path / "d.jsonl", line))[0].label == "7"
