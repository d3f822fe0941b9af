"""Training data selection: positives, negatives, aspect clusters, root sizes, warps."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from viewfinder.datasets.voc import Annotation, VOCDataset, VOCObject, VOCWriter
from viewfinder.dpm.train.data import (
    Positive,
    collect,
    random_negatives,
    root_size,
    split_by_aspect,
    warp_positive,
)
from viewfinder.dpm.train.params import TrainParams
from viewfinder.errors import ConfigError, DatasetError


def _voc(tmp_path, records: dict[str, tuple]) -> VOCDataset:
    w = VOCWriter(tmp_path / "voc")
    for image_id, objs in records.items():
        w.add(image_id, None, Annotation(100, 80, tuple(VOCObject(*o) for o in objs)))
    w.write_split("train", list(records))
    return VOCDataset(tmp_path / "voc", "train")


RECORDS = {
    "a": (("dog", (10, 10, 40, 60)), ("dog", (50, 10, 70, 30), True)),  # one difficult
    "b": (("dog", (5, 5, 30, 70), False, True),),  # truncated
    "c": (("cat", (1, 1, 50, 50)),),  # a negative for dog
    "d": (),  # no objects at all: a negative
    "e": (("dog", (3, 3, 20, 20), True),),  # only a difficult dog: not a negative
}


@pytest.mark.parametrize(("use_truncated", "n_pos", "truncated"), [(True, 2, [False, True]),
                                                                   (False, 1, [False])])
def test_collect_follows_voc_release_rules(tmp_path, use_truncated, n_pos, truncated):
    data = collect(_voc(tmp_path, RECORDS), "dog", TrainParams(use_truncated=use_truncated))
    assert len(data.positives) == n_pos
    assert [p.truncated for p in data.positives] == truncated
    assert data.negatives == ("c", "d")
    # devkit 1-based inclusive -> continuous 0-based corners
    assert data.positives[0].box == (9.0, 9.0, 40.0, 60.0)


def test_fewer_negatives_than_asked_is_logged_not_fatal(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        data = collect(_voc(tmp_path, RECORDS), "dog", TrainParams(max_neg=200))
    assert len(data.negatives) == 2
    assert "fewer than the 200 asked for" in caplog.text


@pytest.mark.parametrize(("max_neg", "max_pos", "n_neg", "n_pos"), [(1, 0, 1, 2), (0, 1, 2, 1)])
def test_limits_on_positives_and_negatives(tmp_path, max_neg, max_pos, n_neg, n_pos):
    data = collect(_voc(tmp_path, RECORDS), "dog", TrainParams(max_neg=max_neg, max_pos=max_pos))
    assert (len(data.negatives), len(data.positives)) == (n_neg, n_pos)


@pytest.mark.parametrize("cls", ["horse", "cat_only_difficult"])
def test_no_positives_is_one_clear_error(tmp_path, cls):
    records = dict(RECORDS, f=(("cat_only_difficult", (1, 1, 9, 9), True),))
    with pytest.raises(DatasetError, match=f"class '{cls}' has no usable positive") as err:
        collect(_voc(tmp_path, records), cls, TrainParams())
    assert "\n" not in str(err.value)


def _pos(w: float, h: float) -> Positive:
    return Positive("x", (0.0, 0.0, w, h))


@pytest.mark.parametrize(("sizes", "n", "expected"), [
    ([(10, 30), (10, 10), (30, 10), (10, 20)], 2, [[2, 1], [3, 0]]),
    ([(10, 30)], 3, [[0]]),
    ([(10, 30), (20, 20)], 3, [[1], [0]]),
])
def test_split_by_aspect_uses_what_exists(sizes, n, expected):
    pos = tuple(_pos(w, h) for w, h in sizes)
    assert split_by_aspect(pos, n) == expected


@pytest.mark.parametrize(("w", "h", "expected"), [
    (20, 40, (10, 5)),  # tiny boxes: area clipped up to 3000 px^2, aspect 2
    (200, 200, (9, 9)),  # huge boxes: clipped down to 5000 px^2
    (60, 60, (8, 8)),  # 3600 px^2 kept
])
def test_root_size_clips_area_and_keeps_aspect(w, h, expected):
    assert root_size([_pos(w, h)] * 3, TrainParams()) == expected


def test_params_validation_names_the_parameter():
    with pytest.raises(ConfigError, match="training parameter components"):
        TrainParams(components=0)
    with pytest.raises(ConfigError, match="solver"):
        TrainParams(solver="lbfgs")
    with pytest.raises(ConfigError, match="max_neg_per_image"):
        TrainParams(max_neg_per_image=-1)
    with pytest.raises(ConfigError, match="unknown key 'Cee'"):
        TrainParams.from_dict({"Cee": 1})


def test_warp_and_random_negatives_have_the_root_shape():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (90, 120, 3)).astype(np.uint8)
    f = warp_positive(img, (10.0, 5.0, 50.0, 85.0), (8, 4), 8)
    assert f.shape == (8, 4, 32) and np.isfinite(f).all() and f.any()
    negs = random_negatives(img, (8, 4), 8, 5, rng)
    assert negs.shape == (5, 8 * 4 * 32)
    assert random_negatives(img[:20, :20], (8, 4), 8, 5, rng).shape == (0, 8 * 4 * 32)
