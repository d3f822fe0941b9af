"""VOC reader on the real coco256-voc set, writer round trips, and the expected errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viewfinder.datasets.voc import (
    Annotation,
    VOCDataset,
    VOCObject,
    VOCWriter,
    parse_annotation,
    voc_to_xyxy,
    xyxy_to_voc,
)
from viewfinder.errors import DatasetError, FormatError


@pytest.fixture(scope="module")
def coco(shared: Path) -> Path:
    return shared / "data" / "coco256-voc"


@pytest.mark.parametrize(("split", "images", "with_person", "person_boxes"), [
    ("train", 128, 61, 254), ("test", 128, 73, 350),
])
def test_coco256_counts_match_its_readme(coco: Path, split: str, images: int, with_person: int,
                                         person_boxes: int) -> None:
    ds = VOCDataset(coco, split)
    assert len(ds) == images
    boxes = [ds.annotation(i).boxes("person") for i in ds.ids]
    assert sum(len(b) for b in boxes) == person_boxes
    assert sum(len(b) > 0 for b in boxes) == with_person
    labels = ds.class_labels("person")
    assert sum(v == 1 for v in labels.values()) == with_person


@pytest.mark.parametrize(("split", "image_id", "objects", "depth"), [
    ("train", "000000000250", 0, 3),  # an image without objects
    ("train", "000000000086", 3, 1),  # a grayscale image
    ("test", "000000007888", 2, 1),
])
def test_special_images(coco: Path, split: str, image_id: str, objects: int, depth: int) -> None:
    ds = VOCDataset(coco, split)
    ann = ds.annotation(image_id)
    assert len(ann.objects) == objects and ann.depth == depth
    assert ann.boxes().shape == (objects, 4)
    image = ds.read_image(image_id)
    assert image.shape == (ann.height, ann.width, 3)


def test_first_record_is_parsed_exactly(coco: Path) -> None:
    ann = VOCDataset(coco, "train").annotation("000000000009")
    assert (ann.width, ann.height, ann.filename) == (640, 480, "000000000009.jpg")
    assert ann.objects[0] == VOCObject("bowl", (2.0, 189.0, 613.0, 474.0), False, False)


def test_missing_annotation_names_the_image(tmp_path: Path) -> None:
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("img_7\n")
    ds = VOCDataset(tmp_path, "test")
    with pytest.raises(DatasetError, match="image img_7: annotation file .* is missing"):
        ds.annotation("img_7")


@pytest.mark.parametrize(("setup", "match"), [
    ("nodir", "does not exist"), ("nosplit", "split 'test' not found"),
    ("empty", "lists no images"),
])
def test_bad_layouts(tmp_path: Path, setup: str, match: str) -> None:
    root = tmp_path / "voc"
    if setup != "nodir":
        (root / "ImageSets" / "Main").mkdir(parents=True)
    if setup == "empty":
        (root / "ImageSets" / "Main" / "test.txt").write_text("\n")
    with pytest.raises(DatasetError, match=match):
        VOCDataset(root, "test")


@pytest.mark.parametrize(("xml", "match"), [
    ("<annotation>", "malformed XML"),
    ("<annotation><object/></annotation>", "missing <size>"),
    ("<annotation><size><width>5</width></size></annotation>", "missing <height>"),
    ("<annotation><size><width>5</width><height>x</height></size></annotation>",
     "<height> is 'x'"),
    ("<annotation><size><width>5</width><height>5</height></size><object><name>a</name>"
     "</object></annotation>", "no <bndbox>"),
])
def test_parse_errors(xml: str, match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        parse_annotation(xml, "rec")


def test_writer_round_trip_with_flags_and_empty_images(tmp_path: Path) -> None:
    w = VOCWriter(tmp_path / "VOC2099")
    rgb = np.full((30, 40, 3), 128, np.uint8)
    anns = {
        "a": Annotation(40, 30, (VOCObject("dog", (1, 2, 20, 25), difficult=True),
                                 VOCObject("cat", (5, 5, 40, 30), truncated=True))),
        "b": Annotation(40, 30, (VOCObject("dog", (3, 3, 9, 9)),)),
        "c": Annotation(40, 30, ()),
    }
    for image_id, ann in anns.items():
        w.add(image_id, rgb, ann)
    w.write_split("trainval", list(anns), classes=["dog", "cat"])
    ds = VOCDataset(tmp_path, "trainval", year=2099)
    assert ds.ids == ["a", "b", "c"]
    for image_id, ann in anns.items():
        got = ds.annotation(image_id)
        assert got.objects == ann.objects and (got.width, got.height) == (40, 30)
    assert ds.class_labels("dog") == {"a": 0, "b": 1, "c": -1}
    assert ds.class_labels("cat") == {"a": 1, "b": -1, "c": -1}
    assert ds.read_image("a").shape == (30, 40, 3)
    assert ds.classes == ("cat", "dog")


@pytest.mark.parametrize(("image_id", "image", "error"), [
    ("../x", None, FormatError), ("ok", np.zeros((5, 5, 3), np.uint8), FormatError),
])
def test_writer_rejects_bad_input(tmp_path: Path, image_id: str, image: np.ndarray | None,
                                  error: type) -> None:
    w = VOCWriter(tmp_path)
    with pytest.raises(error):
        w.add(image_id, image, Annotation(40, 30, ()))
    assert not list((tmp_path / "Annotations").iterdir())


def test_coordinate_conversions_are_inverse() -> None:
    voc = np.array([[1, 1, 10, 20], [5.5, 6, 7, 8]])
    np.testing.assert_array_equal(voc_to_xyxy(voc)[0], [0, 0, 10, 20])
    np.testing.assert_array_equal(xyxy_to_voc(voc_to_xyxy(voc)), voc)
