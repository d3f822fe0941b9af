"""Every zoo spec's ``preprocess()`` against what its detector really feeds the model.

The spec owns the preprocessing (torchvision's ``weights.transforms()`` idea): if a
detector and its spec disagree on size, placement, padding, channel order, mean/std or
input name, one of them is wrong. The detectors' own preprocessing functions are
called directly (read-only); sessions are ONNX Runtime on CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viewfinder.errors import ConfigError, FormatError, ShapeError, SizeError
from viewfinder.media.image import read_image
from viewfinder.runtime import zoo
from viewfinder.runtime.preprocess import Preprocessor
from viewfinder.runtime.session import load_session
from viewfinder.runtime.specs import InputSpec

# (zoo name, det_size given to FaceDetector, size given to spec.preprocess)
FACE_DETECTORS = [
    ("scrfd_500m", None, "auto"),
    ("scrfd_500m", (640, 480), (640, 480)),
    ("scrfd_500m_fixed640", None, None),
    ("scrfd_2.5g", (320, 256), (320, 256)),
    ("yunet", None, "auto"),
    ("yunet", (640, 640), None),
    ("ultraface", None, None),
]
IMAGES = ["group_t1.jpg", "dog.jpg"]  # landscape 1280x886, 768x576


@pytest.fixture(scope="module")
def images(shared: Path) -> dict[str, np.ndarray]:
    return {name: read_image(shared / "images" / name) for name in IMAGES}


def _tested() -> set[str]:
    return {name for name, *_ in FACE_DETECTORS} | {"2d106det", "yolov3-tiny", "yolov3"}


def test_every_zoo_spec_with_an_input_is_held_against_its_detector() -> None:
    with_input = {s.name for s in zoo.list_models() if s.input is not None}
    assert with_input - _tested() <= {"scrfd_10g"}  # not in shared: same spec as scrfd_2.5g
    assert zoo.get_model("scrfd_10g").input == zoo.get_model("scrfd_2.5g").input


@pytest.mark.parametrize(("name", "det_size", "size"), FACE_DETECTORS)
@pytest.mark.parametrize("image_name", IMAGES)
def test_face_detector_spec_matches_the_detector_input(images, name: str, det_size, size,
                                                       image_name: str) -> None:
    from viewfinder.faces.detectors import FaceDetector

    image = images[image_name]
    session = load_session(zoo.resolve(name), backend="ort")
    det = FaceDetector(session, det_size=det_size)
    blob, t = det.preprocess(image)
    got, inverse = zoo.get_model(name).preprocess(size)(image)
    assert zoo.get_model(name).input.name == session.inputs[0].name
    assert got.shape == blob[None].shape
    np.testing.assert_array_equal(got, blob[None])
    boxes = np.array([[0, 0, t.out_w, t.out_h], [10.5, 20.25, 30, 40]], np.float32)
    np.testing.assert_allclose(inverse.apply_box(boxes), t.inverse().apply_box(boxes), rtol=1e-6)


def test_landmark_spec_crops_like_the_landmarker(images) -> None:
    from viewfinder.faces.landmarks import Landmarker106, crop_matrices

    image = images["group_t1.jpg"]
    boxes = np.array([[100.0, 120.0, 260.0, 330.0], [900.3, 40.7, 1010.9, 180.2],
                      [-20.0, 600.0, 90.0, 900.0]])  # the last one leaves the image
    session = load_session(zoo.resolve("2d106det"), backend="ort")
    lm = Landmarker106(session, batch="single")
    crops, matrices = lm.crops(image, boxes)
    want = lm._blob(crops)  # what the session is fed for float-input models
    pre = zoo.get_model("2d106det").preprocess()
    assert zoo.get_model("2d106det").input.name == session.inputs[0].name
    for i, box in enumerate(boxes):
        t = pre.transform(image.shape[1], image.shape[0], box)
        np.testing.assert_allclose([[t.sx, 0, t.tx], [0, t.sy, t.ty]], matrices[i], rtol=1e-12)
        np.testing.assert_allclose(crop_matrices(box[None], 192)[0], matrices[i])
        got, inverse = pre(image, box)
        np.testing.assert_array_equal(got, want[i:i + 1])
        centre = inverse.apply_coords(np.array([[96.0, 96.0]]))[0]
        np.testing.assert_allclose(centre, [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2],
                                   rtol=1e-5)


def _yolo_case(spec: InputSpec, image: np.ndarray) -> None:
    from viewfinder.detect.yolo import preprocess

    w, h = spec.image_size
    blob, t = preprocess(image, (h, w))
    got, inverse = spec.preprocess()(image)
    assert got.shape == blob.shape
    np.testing.assert_array_equal(got, blob)  # Darknet's letterbox, bit for bit
    assert inverse == t.inverse()  # correct_yolo_boxes' unrounded offset included


@pytest.mark.parametrize("image_name", IMAGES)
def test_yolo_zoo_spec_matches_the_yolo_input(images, image_name: str) -> None:
    spec = zoo.get_model("yolov3-tiny").input
    assert spec.name == "images"  # what detect.darknet_export names the input
    _yolo_case(spec, images[image_name])


def test_yolov3_shares_the_tiny_spec() -> None:
    assert zoo.get_model("yolov3").input == zoo.get_model("yolov3-tiny").input


def test_dpm_specs_have_no_tensor_input() -> None:
    with pytest.raises(ConfigError, match="dpm/VOC2007_person: takes no image tensor"):
        zoo.get_model("dpm/VOC2007_person").preprocess()


_SPEC = InputSpec(name="x", size=None, default_size=(64, 48), multiple=16, color="RGB",
                  mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0))


@pytest.mark.parametrize(("spec_kw", "size", "image_wh", "want_wh", "offset"), [
    ({}, None, (40, 20), (64, 48), (0, 0)),                  # default size, top-left
    ({}, "auto", (40, 20), (64, 32), (0, 0)),                # longer side 64, rounded up
    ({}, (32, 32), (40, 20), (32, 32), (0, 0)),
    ({"center": True}, None, (40, 20), (64, 48), (0, 8)),    # 64x32 placed in the middle
    ({"center": True}, None, (30, 20), (64, 48), (0, 2)),    # 64x43 (rounded), offset floored
    ({"center": True, "interpolation": "darknet"}, None, (30, 20), (64, 48), (0, 3)),  # 64x42
    ({"center": True, "interpolation": "darknet"}, None, (50, 29), (64, 48), (0, 5.5)),  # 64x37
    ({"resize": "stretch"}, None, (40, 20), (64, 48), (0, 0)),
    ({"size": (30, 30), "multiple": 1}, "auto", (60, 30), (30, 30), (0, 0)),  # fixed: auto = it
])
def test_geometry(spec_kw: dict, size, image_wh, want_wh, offset) -> None:
    spec = InputSpec(**{**_SPEC.__dict__, **spec_kw})
    pre = spec.preprocess(size)
    t = pre.transform(*image_wh)
    assert (t.out_w, t.out_h) == want_wh
    assert (t.tx, t.ty) == offset


def test_channels_normalisation_padding_and_layout() -> None:
    image = np.zeros((2, 4, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 50, 100, 150  # B, G, R
    spec = InputSpec(name="x", size=(4, 4), color="RGB", mean=(10.0, 20.0, 30.0),
                     std=(2.0, 4.0, 8.0), pad_value=30.0)
    x, inverse = spec.preprocess()(image)
    assert x.shape == (1, 3, 4, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, :, 0, 0], [(150 - 10) / 2, (100 - 20) / 4, (50 - 30) / 8])
    np.testing.assert_array_equal(x[0, :, 3, 0], [(30 - 10) / 2, (30 - 20) / 4, 0.0])  # pad
    np.testing.assert_allclose(inverse.apply_box(np.array([[0, 0, 4, 2]])), [[0, 0, 4, 2]])
    bgr = InputSpec(name="x", size=(4, 4), color="BGR", layout="NHWC")
    y = bgr.preprocess()(image).tensor
    assert y.shape == (1, 4, 4, 3)
    np.testing.assert_array_equal(y[0, 0, 0], [50, 100, 150])


@pytest.mark.parametrize(("spec_kw", "size", "error", "match"), [
    ({"size": (32, 32)}, (64, 64), ConfigError, "fixed at 32x32, cannot run at 64x64"),
    ({}, (50, 48), SizeError, "multiples of 16"),
    ({}, (0, 48), SizeError, "multiples of 16"),
    ({}, "big", ConfigError, "expected \\(w, h\\) or 'auto'"),
])
def test_bad_sizes(spec_kw: dict, size, error: type[Exception], match: str) -> None:
    spec = InputSpec(**{**_SPEC.__dict__, **spec_kw})
    with pytest.raises(error, match=match):
        Preprocessor(spec, size)


@pytest.mark.parametrize(("image", "error", "match"), [
    (np.zeros((4, 4, 3), np.float32), FormatError, "uint8"),
    (np.zeros((4, 4), np.uint8), ShapeError, r"\(H, W, 3\)"),
    (np.zeros((4, 4, 4), np.uint8), ShapeError, r"\(H, W, 3\)"),
    (np.zeros((0, 4, 3), np.uint8), SizeError, "empty image"),
])
def test_bad_images(image: np.ndarray, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _SPEC.preprocess()(image)


@pytest.mark.parametrize(("kw", "match"), [
    ({"pad_value": 300.0}, "pad_value 300.0"),
    ({"crop_margin": 0.0}, "crop_margin must be positive"),
    ({"interpolation": "cubic"}, "interpolation .cubic., expected one of bilinear"),
])
def test_bad_specs(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        InputSpec(name="x", size=None, **kw)


@pytest.mark.parametrize("interpolation", ["nearest", "area"])
def test_interpolation_is_the_specs(interpolation: str) -> None:
    import cv2

    from viewfinder.media.resize import INTERPOLATIONS

    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), np.uint8)
    spec = InputSpec(name="x", size=(20, 15), color="BGR", resize="stretch",
                     interpolation=interpolation)
    want = cv2.resize(image, (20, 15), interpolation=INTERPOLATIONS[interpolation])
    np.testing.assert_array_equal(spec.preprocess()(image).tensor[0].transpose(1, 2, 0), want)
