"""Task-level deltas between two runs of a face model (``bench --compare``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from viewfinder.errors import ModelError
from viewfinder.faces.compare import face_task_kind, task_deltas
from viewfinder.runtime.session import load_session


class Shifted:
    """A session whose first output is moved by ``shift`` (a run that drifts)."""

    def __init__(self, session, shift: float) -> None:
        self._s, self._shift = session, shift
        self.path, self.inputs, self.outputs = session.path, session.inputs, session.outputs
        self.backend = session.backend

    def run(self, feeds):
        outs = self._s.run(feeds)
        return [outs[0] + np.float32(self._shift), *outs[1:]]

    def run_many(self, feeds):
        return [self.run(f) for f in feeds]


@pytest.mark.parametrize(("name", "kind"), [
    ("scrfd_500m_bnkps.onnx", "detector"),
    ("yunet_s.onnx", "detector"),
    ("2d106det.onnx", "landmarks"),
])
def test_face_task_kind(face_models: Path, name: str, kind: str) -> None:
    assert face_task_kind(load_session(face_models / name, backend="ort", threads=1)) == kind


def test_not_a_face_model_gives_no_deltas(tmp_path: Path, shared: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              str(tmp_path / "relu.onnx"))
    s = load_session(tmp_path / "relu.onnx", backend="ort", threads=1)
    assert face_task_kind(s) is None
    assert task_deltas(s, s, [shared / "images" / "group_t1.jpg"]) == []


@pytest.mark.parametrize(("shift", "max_px"), [(0.0, 0.0), (0.01, 0.96)])
def test_landmark_deltas_in_image_pixels(face_models: Path, shared: Path, scrfd,
                                         shift: float, max_px: float) -> None:
    """fc1 + 0.01 moves each point by 0.01 * 96 crop pixels, divided by the crop scale."""
    a = load_session(face_models / "2d106det.onnx", backend="ort", threads=1)
    (d,) = task_deltas(a, Shifted(a, shift), [shared / "images" / "group_t1.jpg"], scrfd)
    assert d.what == "landmarks" and d.faces == (6, 6) and d.matched == 6
    boxes = scrfd.detect(cv2.imread(str(shared / "images" / "group_t1.jpg"))).boxes
    scale = 192 / (1.5 * np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))
    assert d.max_px == pytest.approx(max_px / scale.min(), rel=1e-3, abs=1e-6)
    assert "landmarks max |d|" in str(d) and "(6 faces)" in str(d)


def test_detector_deltas_same_run_are_zero(face_models: Path, shared: Path) -> None:
    a = load_session(face_models / "scrfd_500m_bnkps.onnx", backend="ort", threads=1)
    deltas = task_deltas(a, a, [shared / "images" / "group_t1.jpg"])
    assert [d.what for d in deltas] == ["boxes", "keypoints"]
    assert all(d.faces == (6, 6) and d.matched == 6 and d.max_px == 0.0 for d in deltas)


def test_landmarks_need_a_detector(face_models: Path, shared: Path) -> None:
    a = load_session(face_models / "2d106det.onnx", backend="ort", threads=1)
    with pytest.raises(ModelError, match="needs a face detector"):
        task_deltas(a, a, [shared / "images" / "group_t1.jpg"])


def test_bench_compare_prints_task_deltas(run_cli, shared: Path) -> None:
    code, out, err = run_cli("bench", "--model", "2d106det", "--backend", "ort", "--compare", "ort:f32",
                             "--loop", "2", "--warmup", "0", "--task-image",
                             str(shared / "images" / "group_t1.jpg"))
    assert code == 0, err
    assert "task group_t1.jpg: landmarks max |d| 0 px" in out
