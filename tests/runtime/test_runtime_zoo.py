"""The model zoo: registry, manifest against shared/SHA256SUMS, search order, downloads."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
from pathlib import Path

import pytest

from viewfinder.errors import ConfigError, ModelError, ModelNotFoundError
from viewfinder.runtime import fetch, zoo
from viewfinder.runtime.specs import FileSpec, InputSpec, ModelSpec

REQUIRED = ["scrfd_500m", "scrfd_500m_fixed640", "scrfd_2.5g", "scrfd_10g", "2d106det", "yunet",
            "ultraface", "yolov3-tiny", "yolov3", "dpm/INRIA_person"] + [
    f"dpm/VOC2007_{c}" for c in [
        "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
        "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
        "train", "tvmonitor"]]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def temp_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Register a throw-away spec for one test, with a cache of its own."""
    zoo.list_models()  # load the manifest first
    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))

    def add(files: tuple[FileSpec, ...], name: str = "test/tmp") -> str:
        spec = ModelSpec(name, "test", files, "none", "temporary")
        monkeypatch.setitem(zoo._REGISTRY, name, spec)
        return name

    return add


def test_registry_has_every_required_model() -> None:
    names = {s.name for s in zoo.list_models()}
    assert set(REQUIRED) <= names
    assert len(zoo.list_models("dpm")) == 21


@pytest.mark.parametrize(("query", "suggestion"), [
    ("scrfd500m", "scrfd_500m"), ("yolov3tiny", "yolov3-tiny"), ("2d106", "2d106det"),
    ("dpm/VOC2007_persn", "dpm/VOC2007_person"),
])
def test_unknown_name_lists_close_names(query: str, suggestion: str) -> None:
    with pytest.raises(ModelNotFoundError, match=f"did you mean .*{suggestion}"):
        zoo.get_model(query)


def test_unknown_name_without_close_names_points_to_list() -> None:
    with pytest.raises(ModelNotFoundError, match="models list"):
        zoo.get_model("zzzzqqq")


def test_manifest_matches_shared_checksums(shared: Path) -> None:
    sums = {}
    for line in (shared / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        sums[rel.removeprefix("./")] = digest
    checked = 0
    for spec in zoo.list_models():
        for f in spec.files:
            for rel in (f"models/{f.relpath}",):
                if rel in sums:
                    assert f.sha256[0] == sums[rel], rel
                    assert f.size == (shared / rel).stat().st_size, rel
                    checked += 1
    assert checked >= 30  # 6 face + 3 yolo-tiny + 21 dpm files


@pytest.mark.parametrize(("name", "relpath"), [
    ("scrfd_500m", "face/scrfd_500m_bnkps.onnx"),
    ("2d106det", "face/2d106det.onnx"),
    ("yolov3-tiny", "detect/yolov3-tiny/yolov3-tiny.cfg"),
    ("dpm/VOC2007_person", "dpm/voc-release5/VOC2007_person_final.mat"),
    ("dpm/INRIA_person", "dpm/voc-release5/INRIA_inriaperson_final.mat"),
])
def test_resolve_finds_shared_files_in_subdirs(shared: Path, name: str, relpath: str) -> None:
    assert zoo.resolve(name) == shared / "models" / relpath


def test_resolve_files_returns_every_file_of_a_multi_file_model(shared: Path) -> None:
    files = zoo.resolve_files("yolov3-tiny")
    assert set(files) == {"yolov3-tiny.cfg", "yolov3-tiny.weights", "coco.names"}
    assert all(p.is_file() for p in files.values())


def test_flat_models_dir_is_searched_first(shared: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ultraface_rfb_320.onnx").symlink_to(
        shared / "models/face/ultraface_rfb_320.onnx")
    monkeypatch.setenv("VIEWFINDER_MODELS", f"{tmp_path}:{shared / 'models'}")
    assert zoo.resolve("ultraface") == tmp_path / "ultraface_rfb_320.onnx"


def test_corrupt_local_file_fails_its_checksum(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "face").mkdir()
    (tmp_path / "face" / "yunet_s.onnx").write_bytes(b"\0" * 237823)
    monkeypatch.setenv("VIEWFINDER_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match="sha256 .* expected daede240"):
        zoo.resolve("yunet")


def test_truncated_local_file_reports_sizes(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ultraface_rfb_320.onnx").write_bytes(b"\0" * 10)
    monkeypatch.setenv("VIEWFINDER_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match="10 bytes, expected 1270727"):
        zoo.resolve("ultraface")


def test_download_verifies_and_caches(tmp_path: Path, temp_spec) -> None:
    payload = b"weights" * 1000
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    name = temp_spec((FileSpec("w.bin", "t", src.as_uri(), (_sha(payload),), len(payload)),))
    seen: list[int] = []
    path = zoo.resolve(name, progress=lambda done, total: seen.append(done))
    assert path.read_bytes() == payload and seen[-1] == len(payload)
    src.unlink()  # now only the cache has it
    assert zoo.resolve(name) == path


def test_download_with_wrong_digest_leaves_nothing(tmp_path: Path, temp_spec) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"not the file")
    name = temp_spec((FileSpec("w.bin", "t", src.as_uri(), (_sha(b"other"),)),))
    with pytest.raises(ModelError, match="src.bin: downloaded sha256 .* nothing was kept"):
        zoo.resolve(name)
    assert fetch.find_local(zoo.get_model(name).primary) is None


@pytest.mark.parametrize("kind", ["tgz", "zip"])
def test_download_extracts_an_archive_member(tmp_path: Path, temp_spec, kind: str) -> None:
    import zipfile

    payload = b"dpm model struct"
    archive = tmp_path / f"voc.{kind}"
    if kind == "tgz":
        with tarfile.open(archive, "w:gz") as tf:
            info = tarfile.TarInfo("voc-release5/VOC2007/x_final.mat")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    else:
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("buffalo/VOC2007/x_final.mat", payload)
    name = temp_spec((FileSpec("VOC2007_x_final.mat", "dpm", archive.as_uri(), (_sha(payload),),
                               len(payload), member="VOC2007/x_final.mat"),))
    assert zoo.resolve(name).read_bytes() == payload


def test_archive_without_the_member_is_reported(tmp_path: Path, temp_spec) -> None:
    archive = tmp_path / "a.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("other.txt")
        tf.addfile(info, io.BytesIO(b""))
    name = temp_spec((FileSpec("m.mat", "dpm", archive.as_uri(), (_sha(b"x"),),
                               member="VOC2007/m.mat"),))
    with pytest.raises(ModelError, match="archive has no member VOC2007/m.mat"):
        zoo.resolve(name)


def test_offline_error_names_file_url_and_where_to_put_it(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(ModelNotFoundError) as err:
        zoo.resolve("scrfd_10g")
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("face/scrfd_10g_bnkps.onnx", "huggingface.co", "VIEWFINDER_MODELS",
                 "Name or service not known"):
        assert part in msg


def test_no_fetch_means_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("urllib.request.urlopen", pytest.fail)
    with pytest.raises(ModelNotFoundError, match="models fetch scrfd_10g"):
        zoo.resolve("scrfd_10g", fetch=False)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sha256": ("abc",)}, "64 lowercase hex"),
    ({"size": 0}, "size must be positive"),
])
def test_file_spec_validates(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FileSpec("x.onnx", "face", None, **kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"layout": "CHW"}, "layout"), ({"color": "YUV"}, "colour"),
    ({"std": (1.0, 0.0, 1.0)}, "std"), ({"resize": "pad"}, "resize"),
])
def test_input_spec_validates(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        InputSpec(name="x", size=None, **kwargs)


def test_every_neural_spec_declares_its_preprocessing() -> None:
    for spec in zoo.list_models():
        if spec.task in ("face-detection", "face-landmarks", "detection"):
            assert spec.input is not None and spec.input.color in ("RGB", "BGR"), spec.name


def test_model_arg_accepts_names_and_paths(shared: Path, tmp_path: Path) -> None:
    path, spec = zoo.resolve_model_arg(str(shared / "models/face/2d106det.onnx"))
    assert spec is not None and spec.name == "2d106det"
    other = tmp_path / "mine.onnx"
    other.write_bytes(b"x")
    assert zoo.resolve_model_arg(str(other)) == (other, None)
    with pytest.raises(ModelNotFoundError, match="no such model file"):
        zoo.resolve_model_arg(str(tmp_path / "missing.onnx"))
