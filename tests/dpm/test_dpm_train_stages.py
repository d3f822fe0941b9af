"""The training pipeline end to end: held-out AP, resuming, small data, the log."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from viewfinder.datasets.voc import Annotation, VOCObject, VOCWriter
from viewfinder.dpm.train.evaluate import evaluate, load_trained
from viewfinder.dpm.train.model import StarComponent, TrainModel
from viewfinder.dpm.train.params import TrainParams
from viewfinder.dpm.train.stages import STAGES, train
from viewfinder.dpm.train.synthetic import CLASS, render_figure, write_synthetic_voc
from viewfinder.errors import ConfigError, DatasetError, InputFileError

SMALL = TrainParams.small()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny end-to-end training run on synthetic figures (shared by the tests here)."""
    root = tmp_path_factory.mktemp("dpm-train")
    voc = write_synthetic_voc(root / "voc", n_train=32, n_test=24, seed=0)
    result = train(voc, CLASS, root / "run", SMALL)
    return voc, result


def test_every_stage_is_saved_and_timed(trained):
    _, result = trained
    state = json.loads((result.path / "state.json").read_text())
    assert state["finished"] == list(STAGES)
    assert set(result.stage_seconds) == set(STAGES)
    for stage in STAGES[1:]:
        assert (result.path / f"{stage}.npz").is_file()
    assert len(result.model.components[0].parts) == SMALL.parts
    assert result.model.components[0].bbox_regressor is not None
    assert result.objective["parts_latent"], "objective per solver pass is recorded"


def test_held_out_ap_beats_untrained_and_root_only_models(trained):
    voc, result = trained
    final = evaluate(result.model, voc, "test").ap
    root_only = evaluate(TrainModel.load(result.path / "root_latent.npz"), voc, "test").ap
    rng = np.random.default_rng(0)
    untrained = TrainModel(CLASS, [StarComponent(rng.normal(0, 0.1, result.model.components[0]
                                                            .root.shape))], 8, SMALL.interval)
    chance = evaluate(untrained, voc, "test").ap
    assert final >= 0.95
    assert root_only < final and chance < 0.3


def test_log_file_records_objective_and_cache(trained):
    _, result = trained
    log = (result.path / "train.log").read_text()
    assert "objective" in log and "cache" in log and "stage final finished" in log


def test_rerun_resumes_after_the_last_finished_stage(trained, tmp_path):
    voc, result = trained
    run = tmp_path / "run"
    run.mkdir()
    for f in result.path.iterdir():
        (run / f.name).write_bytes(f.read_bytes())
    state = json.loads((run / "state.json").read_text())
    state["finished"] = state["finished"][:-1]  # as if killed during "final"
    (run / "state.json").write_text(json.dumps(state))
    (run / "final.npz").unlink()
    stages_seen = []
    again = train(voc, CLASS, run, SMALL, progress=lambda s, i: stages_seen.append(s))
    assert again.resumed_from == "bbox"
    assert {s for s in stages_seen if s in STAGES} == {"final"}
    assert (run / "final.npz").is_file()
    done = train(voc, CLASS, run, SMALL)
    assert done.resumed_from == "final"


def test_rerun_with_other_parameters_is_refused(trained):
    voc, result = trained
    with pytest.raises(ConfigError, match="run was started with C=0.01, not 0.5"):
        train(voc, CLASS, result.path, SMALL.replace(C=0.5))


def _tiny_voc(root, n_pos_images: int, n_neg_images: int, n_empty: int = 0):
    rng = np.random.default_rng(5)
    w = VOCWriter(root)
    ids = []
    for i in range(n_pos_images + n_neg_images + n_empty):
        img = np.full((120, 120, 3), 200, np.uint8)
        objs: tuple[VOCObject, ...] = ()
        if i < n_pos_images:
            objs = (VOCObject(CLASS, tuple(float(v) for v in render_figure(img, 30, 10, 1.2,
                                                                            rng))),)
        elif i < n_pos_images + n_neg_images:
            img[::7] = rng.integers(0, 255, (len(img[::7]), 120, 3))
            objs = (VOCObject("other", (5.0, 5.0, 40.0, 40.0)),)
        w.add(f"im{i}", img, Annotation(120, 120, objs))
        ids.append(f"im{i}")
    w.write_split("train", ids, [CLASS])
    return root


@pytest.mark.parametrize(("n_pos", "n_neg", "n_empty", "extra", "says"), [
    (1, 2, 1, {}, "fewer than the 200 asked for"),  # one positive, few negatives, empty image
    (2, 0, 0, {}, "no negative windows"),  # no negative image at all
    (2, 2, 0, {"neg_margin": 1e6}, "mining found no new hard negatives"),
    # 2 positives (x2 mirrored at most) at C 0.01: the regulariser would swamp the loss
    (2, 2, 0, {}, "the regulariser outweighs the loss; raise C"),
    (2, 2, 0, {"solver": "sgd", "sgd_iter": 20_000, "sgd_min_iter": 5_000},
     "sgd solve over"),  # learn.cc's optimiser in the pipeline
])
def test_small_data_trains_and_says_what_it_used(tmp_path, caplog, n_pos, n_neg, n_empty,
                                                 extra, says):
    voc = _tiny_voc(tmp_path / "voc", n_pos, n_neg, n_empty)
    params = SMALL.replace(components=3, latent_iters_parts=1, neg_rounds=1, **extra)
    with caplog.at_level(logging.INFO, logger="viewfinder.dpm.train"):
        result = train(voc, CLASS, tmp_path / "run", params)
    assert (tmp_path / "run" / "final.npz").is_file()
    assert says in caplog.text
    assert len(result.model.components) == min(3, n_pos)


def test_no_positives_is_an_error_and_writes_no_model(tmp_path):
    voc = _tiny_voc(tmp_path / "voc", 0, 2)
    with pytest.raises(DatasetError, match="class 'figure' has no usable positive"):
        train(voc, CLASS, tmp_path / "run", SMALL)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda p: p.mkdir(), InputFileError, "no final.npz"),
    (lambda p: p.with_suffix(".npz").write_bytes(b"junk"), Exception, "not a trained DPM"),
])
def test_load_trained_rejects_unfinished_or_foreign_files(tmp_path, make, error, match):
    target = tmp_path / "run"
    make(target)
    path = target if target.exists() else target.with_suffix(".npz")
    with pytest.raises(error, match=match):
        load_trained(path)


def test_dcd_matches_or_beats_learn_cc_on_a_real_dpm_cache(trained):
    """Latent positives, mined negatives, deformation bounds: the pipeline's own cache."""
    from viewfinder.datasets.voc import VOCDataset
    from viewfinder.dpm.train import optimize as opt
    from viewfinder.dpm.train.cache import FeatureCache
    from viewfinder.dpm.train.search import (
        PyramidCache,
        best_placements,
        entries_of,
        hard_negatives,
    )

    voc_root, result = trained
    model = result.model
    voc = VOCDataset(voc_root, "train")
    pyrs = PyramidCache(voc, model.sbin, model.interval, model.padding)
    cache = FeatureCache(model.offsets(), 5000, 10**9)
    pos = []
    for image_id in voc.ids[:16]:
        boxes = voc.annotation(image_id).boxes(CLASS)
        pyr = pyrs.get(image_id)
        if len(boxes):
            boxes[:, :2] -= 1  # devkit -> continuous corners
            pos += [entries_of(model, pyr, p) for p in best_placements(model, pyr, boxes, 0.7)
                    if p]
        else:
            for pl in hard_negatives(model, pyr, -1.5, 40):
                cache.add_negative((image_id, pl.level, pl.rx, pl.ry, pl.flip), pl.component,
                                   entries_of(model, pyr, [pl])[0][1])
    cache.set_positives(pos)
    prob, reg = cache.problem(), model.regularizer()
    assert cache.num_pos >= 5 and cache.num_neg >= 20
    f_sgd = opt.sgd(prob, reg, SMALL.C, max_iter=400_000, min_iter=200_000).objective.total
    res = opt.dcd(prob, reg, SMALL.C, passes=300, tol=1e-4)
    assert res.objective.total <= f_sgd * (1 + 1e-4)
    lower = reg.lower[np.isfinite(reg.lower)]
    assert (res.w[np.isfinite(reg.lower)] >= lower - 1e-12).all()
