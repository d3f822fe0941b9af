"""DPM models through the one model resolver: names, paths, and corrupt copies refused.

A corrupt ``VOC2007_person_final.mat`` in the models folder must fail with one line
naming the file and the checksum, never be found again by file name and loaded.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from viewfinder.dpm.zoo import load_model, resolve_model_path
from viewfinder.errors import ModelError, ModelNotFoundError

VOC5 = "dpm/voc-release5"
PERSON = "VOC2007_person_final.mat"


def _flip(path: Path) -> None:
    """Same size, other bytes: only the sha256 can tell."""
    data = bytearray(path.read_bytes())
    for i in range(200, 260):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


@pytest.fixture()
def corrupt_models(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``corrupt(how) -> path``: a models folder (alone on VIEWFINDER_MODELS) whose
    person model is a damaged copy of the real one."""

    def make(how) -> Path:
        root = tmp_path / "models"
        (root / VOC5).mkdir(parents=True)
        target = root / VOC5 / PERSON
        shutil.copy(shared / "models" / VOC5 / PERSON, target)
        how(target)
        monkeypatch.setenv("VIEWFINDER_MODELS", str(root))
        monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
        return target

    return make


@pytest.mark.parametrize("name", ["VOC2007_person", "dpm/VOC2007_person", PERSON,
                                  "VOC2007_person_final"])
def test_names_resolve_to_the_verified_zoo_file(shared: Path, name: str) -> None:
    assert resolve_model_path(name) == shared / "models" / VOC5 / PERSON


def test_a_path_is_taken_as_it_is(shared: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.mat"
    shutil.copy(shared / "models" / VOC5 / "VOC2007_cat_final.mat", mine)
    assert resolve_model_path(mine) == mine
    assert load_model(mine).name


@pytest.mark.parametrize(("name", "error", "match"), [
    ("VOC2007_unicorn", ModelNotFoundError, "DPM model 'VOC2007_unicorn'.*did you mean"),
    ("scrfd_500m", ModelError, "a face-detection model, expected a dpm model"),
    ("missing/model.mat", ModelNotFoundError, "model.mat: no such model file"),
])
def test_unknown_names_and_other_tasks(name: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        resolve_model_path(name)


@pytest.mark.parametrize(("how", "match"), [
    (_flip, r"sha256 [0-9a-f]{16}\.\.\., expected 7dc603b3b3072cf4\.\.\."),
    (_truncate, "1000 bytes, expected 274635"),
])
@pytest.mark.parametrize("name", ["VOC2007_person", PERSON])
def test_a_corrupt_copy_is_an_error_not_a_fallback(corrupt_models, how, match: str,
                                                   name: str) -> None:
    target = corrupt_models(how)
    with pytest.raises(ModelError, match=re.escape(str(target)) + ": " + match):
        load_model(name)


@pytest.mark.parametrize(("how", "match"), [(_flip, "sha256"), (_truncate, "1000 bytes")])
def test_dpm_detect_refuses_a_corrupt_model_in_one_line(run_cli, shared: Path, corrupt_models,
                                                        tmp_path: Path, how, match: str) -> None:
    target = corrupt_models(how)
    code, out, err = run_cli("dpm", "detect", shared / "images" / "voc2007" / "000061.jpg",
                             "--model", "VOC2007_person", "--json", tmp_path / "d.jsonl")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {target}: ") and match in lines[0], lines[0]
    assert "delete it and fetch again" in lines[0]
    assert not (tmp_path / "d.jsonl").exists()
