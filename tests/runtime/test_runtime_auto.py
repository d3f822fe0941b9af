"""``backend="auto"``: timed trial, on-disk cache and its invalidation."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from viewfinder.runtime import auto
from viewfinder.runtime.session import load_session

pytest.importorskip("openvino")


@pytest.fixture()
def trials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, float]]:
    """Replace the timing with fixed medians; records every trial that ran."""
    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
    ran: list[dict[str, float]] = []
    medians = {"ort": 0.004, "openvino": 0.002}

    def fake_time(sessions, feeds):
        ran.append(dict(medians))
        return {k: medians[k] for k in sessions}

    monkeypatch.setattr(auto, "_time", fake_time)
    return ran


def test_picks_the_faster_backend_and_says_why(tiny_model, trials) -> None:
    sess = load_session(tiny_model(), backend="auto", shapes={"x": (1, 3, 8, 8)})
    assert sess.backend == "openvino" and len(trials) == 1
    assert sess.choice_reason.startswith("auto: openvino 2.00 ms vs ort 4.00 ms")
    assert "1x3x8x8" in sess.choice_reason and sess.choice_reason in sess.describe()


@pytest.mark.parametrize("faster", ["ort", "openvino"])
def test_choice_follows_the_measurement(tiny_model, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path, faster: str) -> None:
    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(auto, "_time", lambda sessions, feeds: {
        k: (0.001 if k == faster else 0.003) for k in sessions})
    assert load_session(tiny_model(), backend="auto", shapes={"x": (1, 3, 4, 4)}).backend == faster


def test_second_load_uses_the_cache(tiny_model, trials) -> None:
    path = tiny_model()
    load_session(path, backend="auto", shapes={"x": (1, 3, 8, 8)})
    again = load_session(path, backend="auto", shapes={"x": (1, 3, 8, 8)})
    assert len(trials) == 1 and again.choice_reason.endswith("(cached)")
    data = json.loads(auto.cache_file().read_text())
    (entry,) = data.values()
    assert entry["backend"] == "openvino" and entry["best_ms"] == {"ort": 4.0, "openvino": 2.0}


@pytest.mark.parametrize("change", ["model", "cpu_flags", "ort_version", "ov_version", "shape",
                                    "threads", "provider"])
def test_cache_is_invalidated(tiny_model, trials, monkeypatch: pytest.MonkeyPatch,
                              change: str) -> None:
    path = tiny_model()
    shapes = {"x": (1, 3, 8, 8)}
    load_session(path, backend="auto", shapes=shapes)
    kwargs: dict = {}
    if change == "model":
        path = tiny_model(scale=3.0)  # same name, new content
    elif change == "cpu_flags":
        monkeypatch.setattr(auto, "cpu_flags", lambda: ("avx512f", "avx512_bf16"))
    elif change in ("ort_version", "ov_version"):
        real = auto.installed_versions()
        key = "ort" if change == "ort_version" else "openvino"
        monkeypatch.setattr(auto, "installed_versions", lambda: {**real, key: "99.0"})
    elif change == "shape":
        shapes = {"x": (2, 3, 8, 8)}
    elif change == "threads":
        kwargs = {"threads": 1}
    else:  # same backends, another ORT provider (load_session then offers ort alone)
        from viewfinder.runtime.session import _load_ort, _load_ov

        loaders = {"ort": functools.partial(_load_ort, path, "auto", 0, "f32", False),
                   "openvino": functools.partial(_load_ov, path, 0, "f32")}
        sess = auto.choose_backend(path, loaders, shapes=shapes, provider="auto")
        assert len(trials) == 2 and not sess.choice_reason.endswith("(cached)")
        return
    sess = load_session(path, backend="auto", shapes=shapes, **kwargs)
    assert len(trials) == 2 and not sess.choice_reason.endswith("(cached)")


def test_dynamic_zoo_model_uses_its_default_size(shared: Path, trials) -> None:
    sess = load_session(shared / "models/face/scrfd_500m_bnkps.onnx", backend="auto")
    assert "1x3x640x640" in sess.choice_reason


def test_real_trial_times_both_backends(tiny_model, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
    sess = load_session(tiny_model(), backend="auto", shapes={"x": (1, 3, 16, 16)})
    assert sess.choice_reason.startswith(f"auto: {sess.backend} ")
    assert " ms vs " in sess.choice_reason
    other = "ort" if sess.backend == "openvino" else "openvino"
    assert other in sess.choice_reason


def test_precision_only_one_backend_can_run(tiny_model, trials) -> None:
    import openvino as ov

    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(Exception, match="bf16"):
            load_session(tiny_model(), backend="auto", precision="bf16",
                         shapes={"x": (1, 3, 4, 4)})
        return
    sess = load_session(tiny_model(), backend="auto", precision="bf16",
                        shapes={"x": (1, 3, 4, 4)})
    assert sess.backend == "openvino" and "ort skipped" in sess.choice_reason


@pytest.mark.parametrize(("ov_ms", "chosen"), [(3.9, "ort"), (3.7, "openvino")])
def test_reference_backend_keeps_near_ties(tiny_model, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path, ov_ms: float, chosen: str) -> None:
    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(auto, "_time", lambda sessions, feeds: {
        "ort": 0.004, "openvino": ov_ms / 1e3})
    assert load_session(tiny_model(), backend="auto", shapes={"x": (1, 3, 4, 4)}).backend == chosen
