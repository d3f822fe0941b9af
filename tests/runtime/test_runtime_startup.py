"""Start-up caches of the runtime: the ONNX wire reader, the ``auto`` decision found by its
request, OpenVINO's model cache and the decision store (never timings)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from viewfinder.runtime import auto
from viewfinder.runtime.onnx_wire import DecodeError, read_summary

FACE_MODELS = ["scrfd_500m_bnkps.onnx", "scrfd_500m_kps_fixed640.onnx", "yunet_s.onnx",
               "2d106det.onnx", "ultraface_rfb_320.onnx"]


def _with_onnx(path: Path) -> tuple:
    """What :func:`read_summary` reads, as the onnx package reads it."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    known = {t.name for t in g.initializer}

    def dim(d):
        return (d.dim_value if d.HasField("dim_value")
                else d.dim_param if d.HasField("dim_param") else None)

    inputs = tuple((i.name, tuple(dim(d) for d in i.type.tensor_type.shape.dim))
                   for i in g.input if i.name not in known)
    return (tuple(n.op_type for n in g.node), tuple(t.data_type for t in g.initializer),
            frozenset(known), inputs)


@pytest.mark.parametrize("name", FACE_MODELS)
def test_wire_reader_matches_onnx_on_real_models(shared: Path, name: str) -> None:
    path = shared / "models/face" / name
    s = read_summary(path)
    assert (s.op_types, s.initializer_types, s.initializer_names, s.inputs) == _with_onnx(path)
    assert s.op_types and s.inputs


@pytest.mark.parametrize("shape", [("N", 3, "H", "W"), (1, 3, 8, 8), (-1, 3, 4, 4)])
def test_wire_reader_dims(tiny_model, shape) -> None:
    path = tiny_model(shape=shape)
    s = read_summary(path)
    assert s.inputs == (("x", tuple(shape)),)  # the initializers are not inputs
    assert s.op_types == ("Mul", "Add", "ReduceSum") and s.initializer_names == {"scale", "one"}


@pytest.mark.parametrize("cut", [1, 7, 100])
def test_wire_reader_refuses_a_truncated_model(tiny_model, tmp_path: Path, cut: int) -> None:
    data = tiny_model().read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[:-cut])
    with pytest.raises(DecodeError):
        read_summary(bad)


@pytest.mark.parametrize(("content", "error"), [
    (b"this is not a protobuf at all", DecodeError),
    (b"\x0a\xff\xff\xff\xff\x0f", DecodeError),  # a length running past the end
    (b"\x07", DecodeError),  # field number 0
])
def test_wire_reader_refuses_garbage(tmp_path: Path, content: bytes, error) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    with pytest.raises(error):
        read_summary(path)


def test_graph_precision_needs_no_onnx(int8_model, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from viewfinder.runtime.ort import graph_precision

    f32, q = int8_model
    monkeypatch.setitem(sys.modules, "onnx", None)  # any import of onnx would now fail
    assert (graph_precision(f32), graph_precision(q)) == ("f32", "int8")


def _loaders(path: Path, loaded: list[str]) -> dict:
    from viewfinder.runtime.session import _load_ort, _load_ov

    def counting(name, load):
        def run(device):
            loaded.append(name)
            return load(device)
        return run

    return {"ort": counting("ort", functools.partial(_load_ort, path, "cpu", 0, "f32", False)),
            "openvino": counting("openvino", functools.partial(_load_ov, path, 0, "f32"))}


@pytest.fixture()
def fake_trial(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    pytest.importorskip("openvino")
    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
    trials: list[int] = []

    def fake_time(sessions, feeds):
        trials.append(1)
        return {"ort": 0.004, "openvino": 0.002}

    monkeypatch.setattr(auto, "_time", fake_time)
    return trials


def test_cached_decision_loads_only_the_chosen_backend(tiny_model, fake_trial) -> None:
    path = tiny_model()
    loaded: list[str] = []
    first = auto.choose_backend(path, _loaders(path, loaded), shapes={"x": (1, 3, 8, 8)})
    assert first.backend == "openvino" and loaded == ["ort", "openvino"]
    loaded.clear()
    again = auto.choose_backend(path, _loaders(path, loaded), shapes={"x": (1, 3, 8, 8)})
    assert loaded == ["openvino"] and len(fake_trial) == 1  # no ort session to learn shapes
    assert again.choice_reason == f"{first.choice_reason} (cached)"


def test_cached_decision_is_dropped_when_the_model_changes(tiny_model, fake_trial) -> None:
    path = tiny_model()
    auto.choose_backend(path, _loaders(path, []), shapes={"x": (1, 3, 8, 8)})
    size = path.stat().st_size
    path = tiny_model(scale=3.0)  # same name and size, new content
    assert path.stat().st_size == size
    loaded: list[str] = []
    sess = auto.choose_backend(path, _loaders(path, loaded), shapes={"x": (1, 3, 8, 8)})
    assert len(fake_trial) == 2 and not sess.choice_reason.endswith("(cached)")
    assert loaded == ["ort", "openvino"]
    np.testing.assert_array_equal(sess.run(np.ones((1, 3, 8, 8), np.float32))[0],
                                  np.full((1, 3, 8, 8), 4.0, np.float32))


def test_an_unwritable_cache_is_not_an_error(tiny_model, fake_trial, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VIEWFINDER_CACHE", str(blocker / "cache"))
    path = tiny_model()
    for _ in range(2):  # measured each time: nothing could be stored
        sess = auto.choose_backend(path, _loaders(path, []), shapes={"x": (1, 3, 8, 8)})
        assert sess.backend == "openvino"
    assert len(fake_trial) == 2


def test_decision_store_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
    parts = {"model": "abc", "faces": 6}
    assert auto.recall("landmark batching", parts) is None
    auto.record("landmark batching", parts, {"batch": "all", "reason": "r"})
    assert auto.recall("landmark batching", parts)["batch"] == "all"
    assert auto.recall("landmark batching", {**parts, "faces": 5}) is None
    assert auto.recall("other kind", parts) is None
    monkeypatch.setattr(auto, "installed_versions", lambda: {"ort": "0", "openvino": "0"})
    assert auto.recall("landmark batching", parts) is None  # another backend version


def test_installed_versions_import_nothing() -> None:
    import subprocess
    import sys

    code = ("import sys; from viewfinder.runtime.auto import installed_versions as v; "
            "print(v()); print(sorted(m for m in ('openvino', 'onnxruntime', 'onnx') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[-1] == "[]" and "'ort': 'none'" not in out[0]


def test_openvino_compiles_into_the_cache_dir(tiny_model, has_openvino, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from viewfinder.runtime.ov import OvSession, model_cache_dir

    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
    assert model_cache_dir() == tmp_path / "cache" / "openvino"
    sess = OvSession(tiny_model(shape=(1, 3, 4, 4)))
    assert sess._config()["CACHE_DIR"] == str(tmp_path / "cache" / "openvino")
    assert list((tmp_path / "cache" / "openvino").glob("*.blob"))


def test_openvino_cache_follows_the_model_content(tiny_model, has_openvino, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenVINO keys a model passed by path by the path alone: the session must not."""
    from viewfinder.runtime.ov import OvSession

    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
    x = np.ones((1, 3, 4, 4), np.float32)
    for scale in (2.0, 3.0):  # the same file name, rewritten
        sess = OvSession(tiny_model(shape=(1, 3, 4, 4), scale=scale))
        np.testing.assert_array_equal(sess.run(x)[0], np.full_like(x, scale + 1.0))


def test_openvino_without_a_writable_cache_still_runs(tiny_model, has_openvino, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from viewfinder.runtime.ov import OvSession, model_cache_dir

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VIEWFINDER_CACHE", str(blocker))
    assert model_cache_dir() is None
    sess = OvSession(tiny_model(shape=(1, 3, 4, 4)))
    assert "CACHE_DIR" not in sess._config()
    x = np.ones((1, 3, 4, 4), np.float32)
    np.testing.assert_array_equal(sess.run(x)[0], np.full_like(x, 3.0))


def test_dpm_kernels_use_numbas_disk_cache() -> None:
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    from viewfinder.dpm import convolve, dt, features, pyramid

    kernels = [getattr(mod, name) for mod in (convolve, dt, features, pyramid)
               for name in dir(mod) if isinstance(getattr(mod, name), CPUDispatcher)]
    assert len(kernels) >= 10
    for k in kernels:
        assert not isinstance(k._cache, NullCache), k.py_func.__qualname__


def test_openvino_run_many_compiles_its_streams_off_the_request_path(tiny_model, has_openvino
                                                                     ) -> None:
    from viewfinder.runtime.ov import OvSession

    sess = OvSession(tiny_model(), threads=2)
    if sess.threads < 2:
        pytest.skip("run_many runs one call at a time on one thread")
    items = [np.full((1, 3, 4, 4), i, np.float32) for i in range(5)]
    first = sess.run_many(items)  # one after another: a single use compiles nothing
    sess.wait_compiled()
    assert sess._streams is None
    again = sess.run_many(items)  # one after another while the streams compile
    sess.wait_compiled()
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    assert sess._streams is not None
    second = sess.run_many(items)  # on the streams now
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        np.testing.assert_array_equal(a[0], items[i] * 2 + 1)
        np.testing.assert_array_equal(b[0], a[0])


def test_openvino_import_leaves_model_conversion_for_later(has_openvino) -> None:
    import subprocess
    import sys

    code = ("import sys; from viewfinder.runtime.ov import import_openvino; ov = import_openvino(); "
            "a = 'openvino.tools.ovc' in sys.modules; f = ov.convert_model; "
            "print(a, 'openvino.tools.ovc' in sys.modules, callable(f), hasattr(ov, 'Core'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True", "True", "True"]  # left out, then there on first use
