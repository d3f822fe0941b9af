"""Errors, atomic writes, the Detections type, transforms and the CLI root."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.errors import InputFileError, ShapeError, SizeError, check_shape
from viewfinder.fileio import atomic_path, atomic_write_text, check_readable
from viewfinder.media.transforms import letterbox, resize_to
from viewfinder.structures import Detections


@pytest.mark.parametrize(
    ("shape", "pattern", "ok"),
    [
        ((3, 4), ("N", 4), True),
        ((3, 5), ("N", 4), False),
        ((2, 2), ("N", "N"), True),
        ((2, 3), ("N", "N"), False),
        ((2, 3, 4), (None, "*", 4), True),
        ((2, 3), (2, 3, 1), False),
    ],
)
def test_check_shape(shape, pattern, ok):
    arr = np.zeros(shape)
    if ok:
        check_shape(arr, pattern, "x")
    else:
        with pytest.raises(ShapeError, match=r"x: expected shape .* got"):
            check_shape(arr, pattern, "x")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    atomic_write_text(target, "ok")
    assert target.read_text() == "ok" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("make", ["missing", "dir", "no_parent"])
def test_file_errors_name_the_path(tmp_path, make):
    if make == "missing":
        with pytest.raises(InputFileError, match="no such file"):
            check_readable(tmp_path / "nope.jpg")
    elif make == "dir":
        with pytest.raises(InputFileError, match="is a directory"):
            check_readable(tmp_path)
    else:
        with pytest.raises(InputFileError, match="does not exist"), atomic_path(
                tmp_path / "a" / "b.txt"):
            pass


def test_detections_validates_and_indexes():
    d = Detections(np.array([[0, 0, 1, 1], [1, 1, 3, 3]]), [0.9, 0.5], [0, 1], ("a", "b"))
    assert len(d) == 2 and d[1].label(0) == "b" and len(d[d.scores > 0.6]) == 1
    assert d.to_dicts()[0]["label"] == "a"
    with pytest.raises(ValueError):
        d.boxes[0, 0] = 5  # frozen arrays
    assert len(Detections.empty()) == 0


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"boxes": np.zeros((2, 3)), "scores": [1, 1], "class_ids": [0, 0]}, "boxes"),
        ({"boxes": np.zeros((2, 4)), "scores": [1], "class_ids": [0, 0]}, "scores"),
        ({"boxes": np.full((1, 4), np.nan), "scores": [1], "class_ids": [0]}, "NaN"),
        ({"boxes": np.zeros((1, 4)), "scores": [1], "class_ids": [3], "names": ("a",)}, "ids"),
    ],
)
def test_detections_errors(kwargs, text):
    with pytest.raises(ShapeError, match=text):
        Detections(**kwargs)


@pytest.mark.parametrize(
    "make",
    [lambda: resize_to(640, 480, 320, 320), lambda: letterbox(1280, 886, 640, 640),
     lambda: letterbox(300, 700, 416, 416, center=True), lambda: letterbox(5, 3, 32, 32)],
)
def test_transform_inverse_roundtrip(make):
    t = make()
    pts = np.random.default_rng(0).uniform(0, 300, (20, 2)).astype(np.float32)
    np.testing.assert_allclose(t.inverse().apply_coords(t.apply_coords(pts)), pts, atol=1e-3)
    img = np.zeros((t.in_h, t.in_w, 3), np.uint8)
    assert t.apply_image(img).shape == (t.out_h, t.out_w, 3)


def test_letterbox_maps_a_marked_pixel_back():
    img = np.zeros((100, 200), np.uint8)
    img[40:60, 100:120] = 255
    t = letterbox(200, 100, 64, 64)
    out = t.apply_image(img)
    ys, xs = np.nonzero(out > 127)
    box = t.inverse().apply_box(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]))
    np.testing.assert_allclose(box[0], [100, 40, 120, 60], atol=4)


def test_transform_rejects_bad_sizes():
    with pytest.raises(SizeError):
        letterbox(0, 10, 32, 32)
    with pytest.raises(SizeError, match="expects"):
        resize_to(10, 10, 5, 5).apply_image(np.zeros((11, 10), np.uint8))


def test_cli_version_and_unknown_command(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and "viewfinder" in out
    code, _, err = run_cli("no-such-command")
    assert code == 2 and "no-such-command" in err
