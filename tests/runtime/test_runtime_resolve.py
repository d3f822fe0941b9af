"""The one model resolver, ``zoo.resolve_model``: names, paths, tasks, integrity errors.

Every command that takes a model goes through it; a local copy that fails its
checksum is a one-line error (exit 2) everywhere, never a fallback to a search.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from viewfinder.errors import ModelError, ModelNotFoundError
from viewfinder.runtime import zoo


@pytest.mark.parametrize(("arg", "task", "relpath", "spec"), [
    ("scrfd_500m", None, "face/scrfd_500m_bnkps.onnx", "scrfd_500m"),
    ("scrfd_500m", "face-detection", "face/scrfd_500m_bnkps.onnx", "scrfd_500m"),
    ("2d106det", "face-landmarks", "face/2d106det.onnx", "2d106det"),
    ("VOC2007_person", "dpm", "dpm/voc-release5/VOC2007_person_final.mat", "dpm/VOC2007_person"),
    ("INRIA_inriaperson_final.mat", None, "dpm/voc-release5/INRIA_inriaperson_final.mat",
     "dpm/INRIA_person"),
    ("yolov3-tiny", "detection", "detect/yolov3-tiny/yolov3-tiny.cfg", "yolov3-tiny"),
    ("{shared}/models/face/yunet_s.onnx", None, "face/yunet_s.onnx", "yunet"),  # by digest
])
def test_names_and_paths(shared: Path, arg: str, task: str | None, relpath: str,
                         spec: str) -> None:
    path, found = zoo.resolve_model(arg.replace("{shared}", str(shared)), task)
    assert path == shared / "models" / relpath
    assert found is not None and found.name == spec


def test_own_files_have_no_spec_and_are_not_hashed_when_not_asked(tmp_path: Path,
                                                                  monkeypatch) -> None:
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(b"x")
    assert zoo.resolve_model(mine) == (mine, None)
    monkeypatch.setattr(zoo, "spec_for_file", lambda p: pytest.fail("hashed"))
    assert zoo.resolve_model(str(mine), identify=False) == (mine, None)


@pytest.mark.parametrize(("arg", "task", "error", "match"), [
    ("scrfd500m", None, ModelNotFoundError, "model 'scrfd500m': .*did you mean scrfd_500m"),
    ("VOC2007_persn", "dpm", ModelNotFoundError, "DPM model 'VOC2007_persn'.*VOC2007_person"),
    ("yolov3-tiny", "face-detection", ModelError,
     "yolov3-tiny: a detection model, expected a face-detection model"),
    ("VOC2007_person", None, ModelNotFoundError, "did you mean dpm/VOC2007_person"),
    ("{tmp}/missing.onnx", None, ModelNotFoundError, "missing.onnx: no such model file"),
    ("{tmp}", None, ModelNotFoundError, "not a model file"),
    ("scrfd_500m", "faces", ModelNotFoundError, "task 'faces': expected one of"),
])
def test_errors(tmp_path: Path, arg: str, task: str | None, error: type[Exception],
                match: str) -> None:
    with pytest.raises(error, match=match):
        zoo.resolve_model(arg.replace("{tmp}", str(tmp_path)), task)


def test_resolve_model_arg_is_the_same_resolver(shared: Path) -> None:
    assert zoo.resolve_model_arg("ultraface") == zoo.resolve_model("ultraface")


@pytest.fixture()
def corrupt(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``corrupt(relpath) -> path``: a damaged copy (same size, bytes flipped) of a real
    model in a temporary models folder, the only one on ``VIEWFINDER_MODELS``."""

    def make(relpath: str) -> Path:
        target = tmp_path / "models" / relpath
        target.parent.mkdir(parents=True)
        shutil.copy(shared / "models" / relpath, target)
        data = bytearray(target.read_bytes())
        data[100:140] = bytes(b ^ 0x5A for b in data[100:140])
        target.write_bytes(bytes(data))
        monkeypatch.setenv("VIEWFINDER_MODELS", str(tmp_path / "models"))
        monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
        return target

    return make


def _loaders():
    from viewfinder.faces import _runtime

    def detector(name: str) -> object:
        from viewfinder.faces.detectors import load_detector

        return load_detector(name, backend="ort")

    return [("resolve_model", zoo.resolve_model), ("faces resolver", _runtime.resolve_model),
            ("load_detector", detector)]


@pytest.mark.parametrize("loader", [name for name, _ in _loaders()])
def test_corrupt_copy_is_a_checksum_error(corrupt, loader: str) -> None:
    target = corrupt("face/scrfd_500m_bnkps.onnx")
    load = dict(_loaders())[loader]
    with pytest.raises(ModelError, match=re.escape(f"{target}: sha256 ") + ".*expected 6c6ba795"):
        load("scrfd_500m")


@pytest.mark.parametrize(("args", "code"), [
    (("bench", "--model", "ultraface", "--loop", "1", "--backend", "ort"), 2),
    (("convert", "ultraface", "--out", "{tmp}/u.onnx"), 2),
    (("models", "verify", "ultraface"), 1),  # a report that finished: FAILED, exit 1
])
def test_commands_refuse_a_corrupt_copy_in_one_line(run_cli, corrupt, tmp_path: Path,
                                                    args: tuple[str, ...], code: int) -> None:
    target = corrupt("face/ultraface_rfb_320.onnx")
    got, out, err = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    lines = (err if code == 2 else out).strip().splitlines()
    assert got == code and len(lines) == 1, (out, err)
    assert str(target) in lines[0] and "sha256" in lines[0], lines[0]
    assert not (tmp_path / "u.onnx").exists()
