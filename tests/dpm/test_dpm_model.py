"""voc-release5 model import: structure, mirrored components, and non-models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from viewfinder.dpm.features import flip_features
from viewfinder.dpm.model import Component, Model, Part, load_voc_release5
from viewfinder.dpm.zoo import load_model, resolve_model_path
from viewfinder.errors import InputFileError, ModelError, ModelNotFoundError, ShapeError


@pytest.fixture(scope="module")
def voc5(shared: Path) -> Path:
    return shared / "models" / "dpm" / "voc-release5"


@pytest.fixture(scope="module")
def person(voc5: Path) -> Model:
    return load_voc_release5(voc5 / "VOC2007_person_final.mat")


def test_person_model_structure(person: Model) -> None:
    assert person.name == "person" and person.sbin == 8 and person.interval == 10
    assert len(person.components) == 6 and len(person.filters) == 54
    assert person.thresh == pytest.approx(-1.4423741965421475)
    assert person.maxsize == (11, 7) and person.padding == (7, 11)
    assert [c.mirror_of for c in person.components] == [None, 0, None, 2, None, 4]
    for comp in person.components:
        assert len(comp.parts) == 8
        assert comp.detwindow == person.filters[comp.root].shape[:2]
        assert comp.bbox_regressor.shape == (19, 4)
        for part in comp.parts:
            assert person.filters[part.filter].shape == (6, 6, 32)
            assert part.deformation[0] > 0 and part.deformation[2] > 0


def test_mirrored_components_mirror_filters_anchors_and_costs(person: Model) -> None:
    for c in (1, 3, 5):
        comp, orig = person.components[c], person.components[c - 1]
        np.testing.assert_array_equal(person.filters[comp.root],
                                      flip_features(person.filters[orig.root]))
        assert comp.bias == orig.bias
        root_w = person.filters[comp.root].shape[1]
        for p, q in zip(comp.parts, orig.parts, strict=True):
            np.testing.assert_array_equal(person.filters[p.filter],
                                          flip_features(person.filters[q.filter]))
            assert p.anchor[0] == 2 * root_w - q.anchor[0] - 6 and p.anchor[1] == q.anchor[1]
            np.testing.assert_allclose(p.deformation, q.deformation * [1, -1, 1, 1])


@pytest.mark.parametrize(("name", "components", "extra"), [
    ("INRIA_inriaperson_final.mat", 2, True), ("VOC2007_horse_final.mat", 6, False),
    ("VOC2007_tvmonitor_final.mat", 6, False),
])
def test_other_models_load(voc5: Path, name: str, components: int, extra: bool) -> None:
    m = load_voc_release5(voc5 / name)
    assert len(m.components) == components and m.extra_octave is extra


def _fake_model(tmp_path: Path, drop: str) -> Path:
    fields = {"filters": np.zeros(1), "rules": np.zeros(1), "symbols": np.zeros(1),
              "start": 1, "blocks": np.zeros(1), "sbin": 8, "interval": 10, "thresh": -1.0,
              "maxsize": np.array([5, 5]), "type": "M"}
    del fields[drop]
    path = tmp_path / f"no_{drop}.mat"
    scipy.io.savemat(path, {"model": fields})
    return path


@pytest.mark.parametrize("field", ["rules", "filters", "blocks", "thresh"])
def test_a_mat_without_a_model_field_names_it(tmp_path: Path, field: str) -> None:
    with pytest.raises(ModelError, match=rf"field 'model\.{field}' is missing"):
        load_voc_release5(_fake_model(tmp_path, field))


@pytest.mark.parametrize(("content", "error", "match"), [
    (b"not a mat file at all", ModelError, "not a MATLAB .mat file"),
    (None, InputFileError, "no such model file"),
])
def test_not_a_mat_file(tmp_path: Path, content: bytes | None, error: type, match: str) -> None:
    path = tmp_path / "x.mat"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=match):
        load_voc_release5(path)


def test_mat_without_model_variable(tmp_path: Path) -> None:
    path = tmp_path / "other.mat"
    scipy.io.savemat(path, {"weights": np.ones(3)})
    with pytest.raises(ModelError, match="no variable 'model'"):
        load_voc_release5(path)


def test_grammar_models_are_refused_clearly(voc5: Path) -> None:
    with pytest.raises(ModelError, match="grammar models .* not supported"):
        load_voc_release5(voc5 / "VOC2007_person_grammar_final.mat")


@pytest.mark.parametrize("name", ["VOC2007_person", "dpm/VOC2007_person",
                                  "VOC2007_person_final"])
def test_models_are_found_by_name(name: str, voc5: Path) -> None:
    assert resolve_model_path(name).name == "VOC2007_person_final.mat"


def test_unknown_model_name() -> None:
    with pytest.raises(ModelNotFoundError, match="DPM model 'VOC2007_unicorn'"):
        load_model("VOC2007_unicorn")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"filters": (np.zeros((2, 2, 31)),)}, r"filters\[0\]"),
    ({"components": (Component(root=3, parts=(), bias=0.0, detwindow=(2, 2)),)},
     "filter index 3 out of range"),
])
def test_model_validation(kwargs: dict, match: str) -> None:
    args = {"name": "x", "filters": (np.zeros((2, 2, 32)),), "components": (), "thresh": 0.0}
    args.update(kwargs)
    with pytest.raises(ShapeError, match=match):
        Model(**args)


def test_part_and_component_validate_shapes() -> None:
    with pytest.raises(ShapeError):
        Part(0, (0, 0), np.zeros(3))
    with pytest.raises(ShapeError):
        Component(0, (Part(0, (0, 0), np.ones(4)),), 0.0, (2, 2), bbox_regressor=np.zeros((3, 4)))
