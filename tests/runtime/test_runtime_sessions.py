"""Sessions on both backends: metadata, dynamic shapes, batches, precision, errors, parity."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from viewfinder.errors import (
    BackendError,
    ConfigError,
    FormatError,
    MissingDependencyError,
    ModelError,
    ProviderError,
    ShapeError,
)
from viewfinder.runtime import threads, zoo
from viewfinder.runtime.base import TensorInfo
from viewfinder.runtime.session import load_session

try:
    import openvino  # noqa: F401

    HAVE_OV = True
except ImportError:  # the suite passes without the optional backend
    HAVE_OV = False
BACKENDS = ["ort", pytest.param("openvino", marks=pytest.mark.skipif(
    not HAVE_OV, reason="openvino extra not installed"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (4, 3, 5, 7), (2, 3, 32, 16)])
def test_tiny_graph_runs_any_shape_and_batch(tiny_model, backend: str, shape: tuple) -> None:
    sess = load_session(tiny_model(), backend=backend)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    y, s = sess.run(x)
    np.testing.assert_allclose(y, x * 2 + 1, rtol=1e-6)
    np.testing.assert_allclose(s.ravel(), [x.sum()], rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_metadata_reports_names_dynamic_dims_and_dtypes(tiny_model, backend: str) -> None:
    sess = load_session(tiny_model(), backend=backend)
    (inp,) = sess.inputs
    assert inp.name == "x" and inp.dtype == np.float32 and inp.is_dynamic
    assert inp.shape[1] == 3 and [o.name for o in sess.outputs] == ["y", "s"]
    assert sess.precision == "f32" and sess.threads == threads.thread_budget()
    assert sess.backend in sess.describe() and "f32" in sess.describe()


@pytest.mark.parametrize("backend", BACKENDS)
def test_fixed_shape_mismatch_is_a_shape_error(tiny_model, backend: str) -> None:
    sess = load_session(tiny_model(shape=(1, 3, 4, 4)), backend=backend)
    with pytest.raises(ShapeError, match=r"expected shape \(1, 3, 4, 4\), got \(1, 3, 5, 5\)"):
        sess.run(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ShapeError, match="input 'x' not given"):
        sess.run({"nope": np.zeros((1, 3, 4, 4), np.float32)})
    with pytest.raises(FormatError, match="dtype float64, expected float32"):
        sess.run(np.zeros((1, 3, 4, 4)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_warmup_needs_shapes_for_dynamic_inputs(tiny_model, backend: str) -> None:
    path = tiny_model()
    with pytest.raises(ShapeError, match="dynamic dims .* --shape"):
        load_session(path, backend=backend, warmup=1)
    sess = load_session(path, backend=backend, warmup=2, shapes={"x": (1, 3, 4, 4)})
    assert sess.run(np.ones((1, 3, 4, 4), np.float32))[0].max() == 3.0


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"backend": "tvm"}, ConfigError, "expected one of ort, openvino, auto"),
    ({"provider": "quantum"}, ProviderError, "expected one of auto, cpu"),
    ({"provider": "cuda"}, ProviderError, "not available in this onnxruntime build"),
    ({"precision": "f8"}, ConfigError, "expected one of f32, bf16, fp16, int8"),
    ({"precision": "fp16"}, ConfigError, "needs a model stored in fp16"),
    ({"threads": -1}, ConfigError, "threads"),
    ({"backend": "openvino", "device": "tpu"}, ProviderError, "not available"),
    ({"backend": "openvino", "precision": "int8"}, ConfigError, "quantized model"),
])
def test_bad_settings_are_one_line_errors(tiny_model, kwargs: dict, error: type,
                                          match: str) -> None:
    if kwargs.get("backend") == "openvino":
        pytest.importorskip("openvino")
    with pytest.raises(error, match=match) as err:
        load_session(tiny_model(), **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("content", "error", "match"), [
    (None, ModelError, "no such model file"),
    (b"this is not a protobuf at all", ModelError, "not an ONNX model"),
    ("unregistered-op", BackendError, "cannot (run|read) this model"),
])
def test_bad_model_files(tiny_model, tmp_path: Path, backend: str, content, error, match
                         ) -> None:
    path = tmp_path / "bad.onnx"
    if content == "unregistered-op":
        path = tiny_model(op="NoSuchOp")
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=match) as err:
        load_session(path, backend=backend)
    assert "\n" not in str(err.value)


def test_half_precision_without_cpu_support_is_refused(tiny_model, has_openvino) -> None:
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    for precision, cap in (("bf16", "BF16"), ("fp16", "FP16")):
        if cap in caps:
            sess = load_session(tiny_model(), backend="openvino", precision=precision)
            assert sess.precision == precision
        else:
            with pytest.raises(ProviderError, match=f"cannot run {precision}"):
                load_session(tiny_model(), backend="openvino", precision=precision)


def test_missing_openvino_names_the_extra(tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    from viewfinder.runtime import ov

    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.setattr(ov, "_CORE", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'viewfinder\[openvino\]'"):
        load_session(tiny_model(), backend="openvino")
    sess = load_session(tiny_model(), backend="auto")  # auto still works, and says why
    assert sess.backend == "ort" and "openvino skipped" in sess.choice_reason


def test_thread_budget_env(monkeypatch: pytest.MonkeyPatch, tiny_model) -> None:
    monkeypatch.setenv("VIEWFINDER_THREADS", "1")
    assert load_session(tiny_model(), backend="ort").threads == 1
    monkeypatch.setenv("VIEWFINDER_THREADS", "lots")
    with pytest.raises(ConfigError, match="VIEWFINDER_THREADS"):
        load_session(tiny_model(), backend="ort")


def test_physical_cores_is_at_most_logical() -> None:
    import os

    assert 1 <= threads.physical_cores() <= len(os.sched_getaffinity(0))


def test_tensor_info_dynamic_flag() -> None:
    assert TensorInfo("x", (1, 3, None, None), np.dtype(np.float32)).is_dynamic
    assert not TensorInfo("x", (1, 3, 4, 4), np.dtype(np.float32)).is_dynamic


# Measured on shared/images (group_t1, crowd_selfie), f32, AVX2 host: max abs ORT vs
# OpenVINO was 8.3e-6 (scrfd_500m), 9.5e-6 (fixed640), 6.3e-5 (scrfd_2.5g), 3.6e-7
# (2d106det), 5.7e-6 (yunet), 1.3e-6 (ultraface). Tolerances: about 4x those.
PARITY = [("scrfd_500m", 4e-5), ("scrfd_500m_fixed640", 4e-5), ("scrfd_2.5g", 2.5e-4),
          ("2d106det", 2e-6), ("yunet", 3e-5), ("ultraface", 6e-6)]


@pytest.fixture(scope="module")
def group_image(shared: Path) -> np.ndarray:
    from viewfinder.media.image import read_image

    return read_image(shared / "images/group_t1.jpg")


@pytest.mark.parametrize(("name", "atol"), PARITY)
def test_backends_agree_on_every_shared_face_model(shared: Path, group_image: np.ndarray,
                                                   has_openvino, name: str, atol: float) -> None:
    from viewfinder.runtime.preprocess import image_to_tensor

    spec = zoo.get_model(name)
    path = zoo.resolve(name)
    x = image_to_tensor(group_image, spec.input)
    ref = load_session(path, backend="ort").run(x)
    got = load_session(path, backend="openvino").run(x)
    assert len(ref) == len(got)
    for a, b in zip(ref, got, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=0, atol=atol)
    assert max(float(np.abs(a).max()) for a in ref) > 0.01  # a real, non-trivial output


def test_openvino_promotes_a_recurring_shape_to_a_static_compile(tiny_model, has_openvino
                                                                 ) -> None:
    import threading

    sess = load_session(tiny_model(), backend="openvino")
    compiled_in: list[tuple[object, str]] = []
    compile_ = sess._compile

    def spy(shapes, streams=1):
        compiled_in.append((shapes, threading.current_thread().name))
        return compile_(shapes, streams)

    sess._compile = spy
    x = np.ones((1, 3, 4, 4), np.float32)
    for _ in range(4):  # dynamic model first, static compile from the third call on
        np.testing.assert_array_equal(sess.run(x)[0], np.full_like(x, 3.0))
    sess.wait_compiled()
    assert list(sess._compiled) == [((1, 3, 4, 4),)]
    # the static compile ran off the request path: on the background compiler's thread
    assert compiled_in[0] == (None, threading.current_thread().name)
    assert compiled_in[1][0] == ((1, 3, 4, 4),) and compiled_in[1][1].startswith("ov-compile")
    np.testing.assert_array_equal(sess.run(x)[0], np.full_like(x, 3.0))  # now the static one
    sess.reshape({"x": (2, 3, 4, 4)})  # explicit: compiled at once
    assert ((2, 3, 4, 4),) in sess._compiled


@pytest.mark.parametrize(("hint", "name"), [
    ("<Type: 'float32'>", "f32"), ("<Type: 'bfloat16'>", "bf16"), ("<Type: 'float16'>", "f16"),
    ("bf16", "bf16"), ("f16", "f16"),
])
def test_openvino_precision_readback_is_exact(hint: str, name: str) -> None:
    from viewfinder.runtime.ov import _type_name

    assert _type_name(hint) == name


@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_model_runs_as_int8_close_to_f32(int8_model, backend: str) -> None:
    from viewfinder.runtime.ort import graph_precision

    f32, q = int8_model
    assert (graph_precision(f32), graph_precision(q)) == ("f32", "int8")
    sess = load_session(q, backend=backend, precision="int8")
    assert sess.precision == "int8"
    x = np.random.default_rng(1).random((2, 3, 8, 8), dtype=np.float32)
    ref = load_session(f32, backend="ort").run(x)[0]
    got = sess.run(x)[0]
    assert got.shape == ref.shape == (2, 4, 8, 8)
    err = np.abs(got - ref)  # quantized, yet close (measured: mean 0.3 %, max 9 % of range)
    assert err.mean() < 0.01 * ref.max() and err.max() < 0.2 * ref.max()
    assert err.max() > 0  # really ran quantized kernels


def test_load_session_accepts_a_zoo_name(shared: Path) -> None:
    sess = load_session("ultraface")
    assert Path(sess.path) == shared / "models/face/ultraface_rfb_320.onnx"
