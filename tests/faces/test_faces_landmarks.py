"""106-point landmarks (batching, projection) and 5-point alignment."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from viewfinder.errors import ModelError, ShapeError
from viewfinder.faces import ARCFACE_112, align_face, load_landmarker, similarity_transform
from viewfinder.faces.landmarks import crop_matrices


def test_batch_of_all_faces_equals_one_by_one(face_models: Path, scrfd, landmarker,
                                              group_image) -> None:
    single = load_landmarker(face_models / "2d106det.onnx", backend="ort", batch="single")
    assert not single.batched and landmarker.batched
    boxes = scrfd.detect(group_image).boxes
    want = single(group_image, boxes)
    for mode in ("all", "single", "auto"):
        landmarker.batch = mode
        np.testing.assert_allclose(landmarker(group_image, boxes), want, atol=1e-3)
    assert landmarker.batch in ("all", "single") and "one batch of 6" in landmarker.batch_reason


def test_points_follow_the_image(landmarker, scrfd, group_image) -> None:
    """Shift and scale the image: the points move with it (projection back is right)."""
    boxes = scrfd.detect(group_image).boxes
    pts = landmarker(group_image, boxes)
    assert ((pts >= boxes[:, None, :2] - 20) & (pts <= boxes[:, None, 2:] + 20)).all()
    big = cv2.resize(group_image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    np.testing.assert_allclose(landmarker(big, boxes * 2) / 2, pts, atol=1.0)
    shifted = cv2.copyMakeBorder(group_image, 30, 0, 50, 0, cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(landmarker(shifted, boxes + [50, 30, 50, 30]) - [50, 30], pts,
                               atol=0.05)


def test_no_faces_and_edge_faces(landmarker, group_image) -> None:
    assert landmarker(group_image, np.zeros((0, 4))).shape == (0, 106, 2)
    # a face box half outside the image still gives 106 finite points
    pts = landmarker(group_image, np.array([[-50, -60, 60, 70]], np.float32))
    assert pts.shape == (1, 106, 2) and np.isfinite(pts).all()


def test_landmarker_rejects_other_models(face_models: Path) -> None:
    with pytest.raises(ModelError, match="2d106det-style"):
        load_landmarker(face_models / "yunet_s.onnx", backend="ort", batch="single")


def test_crop_matrix_maps_box_to_centre() -> None:
    m = crop_matrices(np.array([[100, 200, 200, 260]]), 192)[0]
    centre = m @ np.array([150, 230, 1.0])
    np.testing.assert_allclose(centre, [96, 96])
    assert m[0, 0] == pytest.approx(192 / 150) and m[0, 1] == 0


@pytest.mark.parametrize(("angle", "scale", "shift"), [(0, 1, (0, 0)), (30, 2.5, (10, -4)),
                                                       (-170, 0.3, (100, 50))])
def test_similarity_transform_recovers_known_transform(angle, scale, shift) -> None:
    a = np.deg2rad(angle)
    m = np.array([[scale * np.cos(a), -scale * np.sin(a), shift[0]],
                  [scale * np.sin(a), scale * np.cos(a), shift[1]]])
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    dst = src @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(similarity_transform(src, dst), m, atol=1e-9)
    est, _ = cv2.estimateAffinePartial2D(src, dst)
    np.testing.assert_allclose(similarity_transform(src, dst), est, atol=1e-6)


def test_align_face_puts_keypoints_on_the_template(scrfd, group_image) -> None:
    faces = scrfd.detect(group_image)
    crop, m = align_face(group_image, faces.keypoints[0])
    assert crop.shape == (112, 112, 3)
    mapped = faces.keypoints[0] @ m[:, :2].T + m[:, 2]
    err = np.linalg.norm(mapped - ARCFACE_112, axis=1)
    assert err[:2].max() < 3.0 and err.mean() < 5.0   # eyes on the template, face close


@pytest.mark.parametrize(("src", "dst", "match"), [
    (np.zeros((5, 3)), np.zeros((5, 2)), "src points"),
    (np.zeros((5, 2)), np.zeros((4, 2)), "dst points"),
    (np.zeros((1, 2)), np.zeros((1, 2)), "at least 2"),
])
def test_similarity_transform_errors(src, dst, match) -> None:
    with pytest.raises(ShapeError, match=match):
        similarity_transform(src, dst)


def test_parallel_workers_equal_one_session(face_models: Path, scrfd, group_image) -> None:
    """Many faces go to per-thread workers in chunks; the points must not change."""
    from viewfinder.runtime.threads import thread_budget

    if thread_budget() < 2:
        pytest.skip("one thread: no parallel workers")
    lm = load_landmarker(face_models / "2d106det.onnx", backend="ort", threads=2, batch="all")
    boxes = scrfd.detect(group_image).boxes
    boxes = np.concatenate([boxes, boxes + 3.5])  # 12 faces
    lm.parallel_min = 1 << 30
    want = lm(group_image, boxes)
    lm.parallel_min, lm.chunk = 2, 4
    got = lm(group_image, boxes)
    assert len(lm._workers) >= 2 and lm._sizes(12) == [4, 4, 4] and lm._sizes(7) == [4, 2, 1]
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize(("backend", "prelu"), [("ort", 0), ("openvino", 28)])
def test_batched_file_takes_bgra_crops(face_models: Path, backend: str, prelu: int) -> None:
    """ONNX Runtime runs the PRelu rewrite, OpenVINO the original ops; both take the
    uint8 BGRA crops directly."""
    import onnx

    pytest.importorskip("openvino") if backend == "openvino" else None
    lm = load_landmarker(face_models / "2d106det.onnx", backend=backend, threads=1)
    model = onnx.load(lm.session.path)
    assert [n.op_type for n in model.graph.node].count("PRelu") == prelu
    assert lm.packed and lm.session.inputs[0].dtype == np.uint8
    assert tuple(lm.session.inputs[0].shape[1:]) == (192, 192, 4)


def test_single_keeps_the_original_file(face_models: Path) -> None:
    single = load_landmarker(face_models / "2d106det.onnx", backend="ort", batch="single")
    assert Path(single.session.path).name == "2d106det.onnx"


@pytest.mark.parametrize(("wall_all", "cpu_all", "wall_single", "cpu_single", "expected"), [
    (10.0, 20.0, 8.0, 25.0, "all"),      # faster by the wall clock only (a loaded host)
    (10.0, 20.0, 12.0, 15.0, "all"),     # cheaper in CPU only
    (10.0, 20.0, 8.0, 15.0, "single"),   # wins on both clocks
    (10.0, 20.0, 12.0, 25.0, "all"),     # loses on both
])
def test_batching_trial_needs_both_clocks_for_single(
        monkeypatch: pytest.MonkeyPatch, landmarker, scrfd, group_image, wall_all: float,
        cpu_all: float, wall_single: float, cpu_single: float, expected: str) -> None:
    """One call per face is kept only when it beats one batch on wall clock and CPU."""
    import viewfinder.faces.landmarks as lm_mod

    clock = {"wall": 0.0, "cpu": 0.0}
    cost = {"all": (wall_all, cpu_all), "single": (wall_single, cpu_single)}

    class FakeTime:
        @staticmethod
        def perf_counter() -> float:
            return clock["wall"]

        @staticmethod
        def process_time() -> float:
            return clock["cpu"]

    run = landmarker._run

    def timed_run(image, m, mode, profiler=lm_mod.NULL_PROFILER):
        clock["wall"] += cost[mode][0] / 1e3
        clock["cpu"] += cost[mode][1] / 1e3
        return run(image, m, mode, profiler)

    monkeypatch.setattr(lm_mod, "time", FakeTime)
    monkeypatch.setattr(landmarker, "_run", timed_run)
    for attr in ("batch", "batch_reason"):  # the fixture is shared: restored afterwards
        monkeypatch.setattr(landmarker, attr, getattr(landmarker, attr))
    boxes = scrfd.detect(group_image).boxes
    landmarker._choose(cv2.cvtColor(group_image, cv2.COLOR_BGR2BGRA), crop_matrices(boxes, 192),
                       lm_mod.NULL_PROFILER)
    assert landmarker.batch == expected
    assert f"{cpu_all:.1f} ms CPU" in landmarker.batch_reason
