"""Calls beyond ``run``: ``Session.run_many`` (independent calls, outputs in order,
inputs from a generator that reuses one buffer: each item is handed over before the next
is made) and ``reshape`` (shapes checked before anything compiles)."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.errors import FormatError, ShapeError
from viewfinder.runtime.session import load_session

try:
    import openvino  # noqa: F401

    HAVE_OV = True
except ImportError:
    HAVE_OV = False

BACKENDS = ["ort", pytest.param("openvino", marks=pytest.mark.skipif(
    not HAVE_OV, reason="openvino extra not installed"))]


def _reused(items: list[np.ndarray]):
    """Yield every item through the same buffer (what the landmark crops do)."""
    buf = np.empty_like(items[0])
    for item in items:
        buf[...] = item
        yield buf


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("count", [0, 1, 2, 7])
def test_outputs_in_order_from_a_reused_buffer(tiny_model, backend, threads, count):
    s = load_session(tiny_model(), backend=backend, threads=threads)
    rng = np.random.default_rng(count)
    items = [rng.random((2, 3, 4, 5), dtype=np.float32) for _ in range(count)]
    got = s.run_many(_reused(items)) if items else s.run_many([])
    assert len(got) == count
    for item, outs in zip(items, got, strict=True):
        np.testing.assert_allclose(outs[0], item * 2 + 1, rtol=1e-6)
        np.testing.assert_allclose(outs[1].reshape(()), item.sum(), rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("bad", "error", "match"), [
    (np.zeros((2, 4, 4, 5), np.float32), ShapeError, "input 'x'"),
    (np.zeros((2, 3, 4, 5), np.float64), FormatError, "dtype float64"),
])
def test_bad_item_is_a_one_line_error(tiny_model, backend, bad, error, match):
    s = load_session(tiny_model(), backend=backend, threads=2)
    good = np.zeros((2, 3, 4, 5), np.float32)
    with pytest.raises(error, match=match):
        s.run_many([good, bad, good])
    np.testing.assert_allclose(s.run_many([good, good])[1][0], good + 1)  # still usable


@pytest.mark.skipif(not HAVE_OV, reason="openvino extra not installed")
@pytest.mark.parametrize(("shape", "match"), [
    ((2, 4, 8, 8), r"expected \(\?, 3, \?, \?\)|expected"),
    (None, "dynamic dims"),
])
def test_openvino_reshape_checks_shapes(tiny_model, shape, match):
    s = load_session(tiny_model(), backend="openvino", threads=1)
    with pytest.raises(ShapeError, match=match):
        s.reshape({"x": shape} if shape is not None else {})
    s.reshape({"x": (2, 3, 8, 8)})  # a valid one compiles
    assert s.run(np.ones((2, 3, 8, 8), np.float32))[0].shape == (2, 3, 8, 8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_generator_propagates_its_own_error(tiny_model, backend):
    s = load_session(tiny_model(), backend=backend, threads=2)

    def feeds():
        yield np.zeros((1, 3, 4, 5), np.float32)
        raise KeyError("crop 2")

    with pytest.raises(KeyError, match="crop 2"):
        s.run_many(feeds())
    assert len(s.run_many([np.zeros((1, 3, 4, 5), np.float32)] * 2)) == 2
