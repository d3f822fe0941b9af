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


def _records(path: Path, per_image: dict[str, list[tuple[str, float, list[float]]]]) -> Path:
    """Per-image JSON lines as detect and dpm detect write them (0-based corners)."""
    lines = []
    for image_id, dets in per_image.items():
        lines.append(json.dumps({
            "source": "imgs", "path": f"imgs/{image_id}.jpg", "image_id": image_id,
            "frame": None, "time": None, "width": 100, "height": 80,
            "detections": [{"box": box, "score": score, "label": label, "class_id": 0}
                           for label, score, box in dets]}))
    path.write_text("\n".join(lines) + "\n")
    return path


_PER_IMAGE = {"a": [("dog", 0.9, [0, 0, 10, 10]), ("dog", 0.6, [50, 40, 80, 70])],
              "b": [("dog", 0.7, [20, 20, 40, 40])],
              "c": [("dog", 0.8, [0, 0, 10, 10])]}


@pytest.mark.parametrize(("per_image", "warning"), [
    (_PER_IMAGE, None),
    ({**_PER_IMAGE, "c": []}, None),  # an empty record still covers its image
    ({k: v for k, v in _PER_IMAGE.items() if k != "c"},
     "warning: detections cover 2 of the 3 images of test"),
])
def test_per_image_records_and_coverage(run_cli, voc: Path, tmp_path: Path, per_image: dict,
                                        warning: str | None) -> None:
    det = _records(tmp_path / "d.jsonl", per_image)
    code, out, err = run_cli("eval", "voc", "--detections", det, "--voc", voc / "VOC2007",
                             "--json", tmp_path / "r.json")
    assert code == 0, err
    assert (warning in err) if warning else err == "", err
    result = json.loads((tmp_path / "r.json").read_text())
    want = (6 + 5 * 2 / 3) / 11 if per_image.get("c") else 1.0  # c's detection: a false positive
    assert result["classes"]["dog"]["ap"] == pytest.approx(want)
    assert result["images"] == 3 and result["images_covered"] == (3 if "c" in per_image else 2)


def test_a_class_the_set_lacks_is_said_and_written_as_null(run_cli, voc: Path,
                                                           tmp_path: Path) -> None:
    det = _records(tmp_path / "d.jsonl", {**_PER_IMAGE, "b": [("cat", 0.5, [1, 1, 5, 5])]})
    code, out, err = run_cli("eval", "voc", "--detections", det, "--voc", voc / "VOC2007",
                             "--json", tmp_path / "r.json")
    assert code == 0 and "warning: cat: not a class of the test set (AP n/a)" in err
    assert json.loads((tmp_path / "r.json").read_text())["classes"]["cat"]["ap"] is None


@pytest.mark.parametrize(("make", "extra", "match"), [
    (lambda d: _records(d / "d.jsonl", _PER_IMAGE), ["--classes", "persn"],
     r"--classes persn: unknown class 'persn' \(the test set of .*VOC2007 has: dog\)"),
    (lambda d: _records(d / "d.jsonl", _PER_IMAGE), ["--classes", "dog,catt"],
     "unknown class 'catt'"),
    (lambda d: _records(d / "d.jsonl", _PER_IMAGE), ["--classes", ","], "no class given"),
    (lambda d: _records(d / "d.jsonl", {"a": [("", 0.9, [0, 0, 10, 10])]}), [],
     "d.jsonl:1: detection 0: no class name"),
    (lambda d: _records(d / "d.jsonl", {**_PER_IMAGE, "zz": []}), [],
     "image zz is not in the evaluated set"),
    (lambda d: _records(d / "d.jsonl", _PER_IMAGE), ["--pr-curve", "{tmp}/missing_dir/x.png"],
     "--pr-curve's directory .*missing_dir does not exist"),
    (lambda d: _records(d / "d.jsonl", _PER_IMAGE), ["--json", "{tmp}/missing_dir/r.json"],
     "--json's directory .*missing_dir does not exist"),
    (lambda d: _records(d / "d.jsonl", _PER_IMAGE), ["--pr-curve", "{tmp}/pr.txt"],
     "--pr-curve writes an image"),
])
def test_refusals_are_one_line_exit_2_before_any_output(run_cli, voc: Path, tmp_path: Path,
                                                        make, extra: list[str],
                                                        match: str) -> None:
    import re

    det = make(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code, out, err = run_cli("eval", "voc", "--detections", det, "--voc", voc / "VOC2007",
                             *args, "--json" if "--json" not in args else "--year",
                             tmp_path / "r.json" if "--json" not in args else "2007")
    assert code == 2 and err.count("\n") == 1 and re.search(match, err), err
    assert out == ""  # no table printed before the refusal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["VOC2007", "d.jsonl"]


@pytest.mark.slow
def test_dpm_detect_to_eval_through_json_lines(run_cli, shared: Path, tmp_path: Path) -> None:
    """The pipe: dpm detect's JSON lines are what eval reads (one image of 128 covered)."""
    voc = shared / "data" / "coco256-voc"
    image = voc / "JPEGImages" / "000000000785.jpg"
    if not image.is_file():
        image = sorted((voc / "JPEGImages").glob("*.jpg"))[0]
    det = tmp_path / "d.jsonl"
    code, _, err = run_cli("dpm", "detect", image, "--model", "VOC2007_person", "--json", det)
    assert code == 0, err
    code, out, err = run_cli("eval", "voc", "--detections", det, "--voc", voc, "--classes",
                             "person", "--json", tmp_path / "r.json")
    assert code == 0, err
    assert "warning: detections cover 1 of the 128 images of test" in err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["classes"]["person"]["detections"] > 0 and result["images_covered"] == 1


@pytest.mark.parametrize(("stdin", "code", "match"), [
    ("{records}", 0, None),
    ("", 2, "<stdin>: no detection records"),
    ("  \n", 2, "<stdin>: no detection records"),
    ("{bad}", 2, "<stdin>:1: not a detection record"),
])
def test_detections_from_stdin(run_cli, voc: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch, stdin: str, code: int,
                               match: str | None) -> None:
    import io

    text = _records(tmp_path / "d.jsonl", _PER_IMAGE).read_text()
    stdin = stdin.replace("{records}", text).replace("{bad}", "not json\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    got, out, err = run_cli("eval", "voc", "--detections", "-", "--voc", voc / "VOC2007")
    assert got == code, err
    assert (match in err) if match else ("mAP" in out and err == ""), err


def test_yolo_detect_to_eval_through_stdout(run_cli, shared: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``viewfinder detect LIST --json - | viewfinder eval voc --detections -``: the records
    detect prints are what eval reads, every image counted, empty ones included."""
    import io

    voc = shared / "data" / "coco256-voc"
    ids = (voc / "ImageSets" / "Main" / "test.txt").read_text().split()[:6]
    listing = tmp_path / "six.txt"
    listing.write_text("".join(f"{voc / 'JPEGImages' / i}.jpg\n" for i in ids))
    code, out, err = run_cli("detect", listing, "--score", "0.05", "--json", "-")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["image_id"] for r in records] == ids
    persons = sum(d["label"] == "person" for r in records for d in r["detections"])
    monkeypatch.setattr("sys.stdin", io.StringIO(out))
    code, _, err = run_cli("eval", "voc", "--detections", "-", "--voc", voc, "--classes",
                           "person", "--json", tmp_path / "ap.json")
    assert code == 0, err
    assert "detections cover 6 of the 128 images of test" in err
    result = json.loads((tmp_path / "ap.json").read_text())
    assert result["images_covered"] == 6 and result["classes"]["person"]["detections"] == persons
    assert 0 < result["classes"]["person"]["ap"] <= 1
