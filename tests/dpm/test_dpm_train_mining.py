"""Training's per-image searches on the engines: the same model on 1 or 2 processes or
on Ray actors, mining that resumes where a full cache stopped it, evaluation on workers."""

from __future__ import annotations

import re

import numpy as np
import pytest

from viewfinder.dpm.train.evaluate import evaluate
from viewfinder.dpm.train.params import TrainParams
from viewfinder.dpm.train.stages import train
from viewfinder.dpm.train.synthetic import CLASS, write_synthetic_voc

SMALL = TrainParams.small()


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    return write_synthetic_voc(tmp_path_factory.mktemp("mining") / "voc", n_train=24,
                               n_test=12, seed=1)


@pytest.fixture(scope="module")
def serial(voc, tmp_path_factory):
    return train(voc, CLASS, tmp_path_factory.mktemp("serial") / "run", SMALL)


def _same_model(a, b) -> None:
    np.testing.assert_array_equal(a.model.to_vector(), b.model.to_vector())
    assert a.model.thresh == b.model.thresh
    for ca, cb in zip(a.model.components, b.model.components, strict=True):
        np.testing.assert_array_equal(ca.bbox_regressor, cb.bbox_regressor)
    assert a.objective == b.objective  # every solve saw the same cache


def test_two_workers_train_the_serial_model(voc, serial, tmp_path) -> None:
    pooled = train(voc, CLASS, tmp_path / "run", SMALL, workers=2)
    _same_model(serial, pooled)


@pytest.mark.slow
@pytest.mark.xdist_group("scale-ray")
def test_ray_actors_train_the_serial_model(voc, serial, tmp_path, local_ray) -> None:
    pytest.importorskip("ray.data", reason="ray is not installed")
    on_ray = train(voc, CLASS, tmp_path / "run", SMALL, workers=2, engine="ray")
    _same_model(serial, on_ray)


def test_mining_resumes_after_the_image_where_the_cache_filled(voc, tmp_path) -> None:
    # A cache of 30 windows fills in the first image or two: each round must start
    # where the last one stopped (voc-release5's negpos), not at the first image again.
    params = SMALL.replace(cache_examples=30, parts=0, latent_iters_parts=1)
    result = train(voc, CLASS, tmp_path / "run", params)
    log = (result.path / "train.log").read_text()
    starts = [int(m) for m in re.findall(r"mining \d+ negative images from image (\d+)", log)]
    assert len(starts) >= 3
    assert len(set(starts)) > 1 and starts[1] > starts[0]


def test_evaluate_on_workers_equals_serial(voc, serial) -> None:
    one = evaluate(serial.model, voc, "test")
    two = evaluate(serial.model, voc, "test", workers=2)
    assert (two.ap, two.detections, two.ground_truth) == (one.ap, one.detections,
                                                         one.ground_truth)


def test_until_stops_after_a_stage_and_a_rerun_finishes_the_serial_model(voc, serial,
                                                                        tmp_path) -> None:
    part = train(voc, CLASS, tmp_path / "run", SMALL, until="root_latent", workers=2)
    assert not (part.path / "parts_init.npz").exists()
    assert len(part.model.components[0].parts) == 0  # the root_latent model
    _same_model(serial, train(voc, CLASS, tmp_path / "run", SMALL))


def test_until_names_a_stage() -> None:
    from viewfinder.errors import ConfigError

    with pytest.raises(ConfigError, match="until 'mix': expected one of data, root_init"):
        train("nowhere", CLASS, "nowhere", SMALL, until="mix")
