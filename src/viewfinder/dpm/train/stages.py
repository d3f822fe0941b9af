"""The training pipeline (rel4/rel5 ``pascal_train.m``) as resumable stages.

Stages, each saved in the run directory before it counts as finished:

1. ``data``: positives and negatives of the class (``data.json``).
2. ``root_init``: aspect-ratio clusters; per cluster a root filter trained on warped
   positives (and their mirror images) against random negative windows.
3. ``root_latent``: components merged into one mixture; latent positives (best
   placement overlapping >= ``min_overlap``, component and orientation latent) and
   hard negatives mined into the bounded cache, alternated with the solver.
4. ``parts_init``: parts placed on each root's energy.
5. ``parts_latent``: latent training of the full model.
6. ``bbox``: bounding-box regressors from the latent positives.
7. ``final``: the detection threshold; ``final.npz`` is the trained model.

A rerun with the same parameters loads the last finished stage and goes on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.datasets.voc import VOCDataset
from viewfinder.dpm.train import optimize as opt
from viewfinder.dpm.train.cache import FeatureCache
from viewfinder.dpm.train.data import (
    TrainingData,
    collect,
    random_negatives,
    root_size,
    split_by_aspect,
    warped_set,
)
from viewfinder.dpm.train.mining import (
    BoxResult,
    ImageUnit,
    NegativeWindow,
    SearchSetup,
    model_token,
    search_image,
    window_limit,
)
from viewfinder.dpm.train.model import StarComponent, TrainModel
from viewfinder.dpm.train.params import TrainParams
from viewfinder.dpm.train.parts import add_parts, fit_regressor, regression_inputs
from viewfinder.dpm.train.rundir import RunDir
from viewfinder.errors import ConfigError, ViewfinderError
from viewfinder.fileio import atomic_write_text

__all__ = ["STAGES", "RunResult", "train"]

logger = logging.getLogger(__name__)

#: Negatives scoring below this after a solve leave the cache. Not -1: the solver is
#: approximate, and negatives on the margin (score -1, the support vectors) must stay, or
#: the next solve, without them, moves the model and the same windows turn hard again.
SHRINK_MARGIN = -1.05

STAGES = ("data", "root_init", "root_latent", "parts_init", "parts_latent", "bbox", "final")
#: ``progress(stage, info)``; info has ``objective``, ``cache``, ``positives``, ``done``...
Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class RunResult:
    """What :func:`train` produced."""

    path: Path
    model: TrainModel
    stage_seconds: dict[str, float] = field(default_factory=dict)
    objective: dict[str, list[float]] = field(default_factory=dict)
    resumed_from: str | None = None
    #: Process CPU seconds (all threads) of the stages run by this call.
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)
    #: Every solve of this call: stage, examples, objective, passes, seconds, warm.
    solves: list[dict[str, Any]] = field(default_factory=list)


def train(voc_root: str | os.PathLike[str], cls: str, out: str | os.PathLike[str],
          params: TrainParams | None = None, split: str = "train",
          progress: Progress | None = None, *, workers: int = 0, engine: str = "pool",
          address: str | None = None, until: str | None = None) -> RunResult:
    """Train a DPM for ``cls`` on a VOC split, resuming a run directory if it exists.

    The per-image searches (hard-negative mining, latent relabelling, box regression
    and threshold placements) run on ``workers`` processes (``engine="pool"``) or Ray
    actors (``engine="ray"``); their results are used in image order, so the model is
    the serial run's (:mod:`viewfinder.dpm.train.mining`).

    Args:
        voc_root: VOC-layout directory.
        cls: Class name as the annotations spell it.
        out: Run directory (created; reused when it holds a run with the same params).
        params: Training parameters (voc-release defaults).
        split: Image set to train on.
        progress: Optional callback ``progress(stage, info)``.
        workers: Processes or actors for the searches (<= 1 with the pool: this process).
        engine: ``"pool"`` or ``"ray"``.
        address: Ray cluster (None: a local Ray is started).
        until: Stop after this stage (one of :data:`STAGES`); a later call without it
            resumes from there.

    Returns:
        The final model, seconds per stage and objective history.

    Raises:
        DatasetError: no positives for ``cls`` (or the VOC set is unusable).
        ConfigError: ``out`` holds a run with other parameters, or ``until`` is not a stage.
    """
    from viewfinder.scale.mapper import open_mapper

    if until is not None and until not in STAGES:
        raise ConfigError(f"until {until!r}: expected one of {', '.join(STAGES)}")
    params = params or TrainParams()
    voc = VOCDataset(voc_root, split)
    fresh = not Path(out).exists()
    run = RunDir(out, params, cls, split)
    setup = SearchSetup(str(voc.root), split, params.sbin, params.interval,
                        params.pyramid_cache_mb * 1_000_000)
    try:
        with run.logging_to_file(), open_mapper(search_image, setup, workers=workers,
                                                engine=engine, address=address) as mapper:
            return _Trainer(voc, cls, run, params, progress, mapper).run(until)
    except ViewfinderError:
        if fresh and not run.state["finished"]:  # leave no partial run behind
            shutil.rmtree(run.path, ignore_errors=True)
        raise


class _Trainer:
    def __init__(self, voc: VOCDataset, cls: str, run: RunDir, params: TrainParams,
                 progress: Progress | None, mapper: Any) -> None:
        self.voc, self.cls, self.run_dir, self.p = voc, cls, run, params
        self.progress = progress or (lambda stage, info: None)
        self.rng = np.random.default_rng(params.seed)
        self.data: TrainingData | None = None
        self.mapper = mapper
        #: Where the next mining round starts in the negative images (voc-release5
        #: ``neghard``'s ``negpos``: a round that stops with the cache full resumes
        #: after the last image it mined, so every negative image gets its turn).
        self.negpos = 0
        self.history: list[float] = []
        self._solved: tuple[int, int, np.ndarray] | None = None  # cache, version, w
        self.solves: list[dict[str, Any]] = []
        self.cpu: dict[str, float] = {}

    # ------------------------------------------------------------------ driver

    def run(self, until: str | None = None) -> RunResult:
        model: TrainModel | None = None
        resumed = None
        stages = STAGES[:STAGES.index(until) + 1] if until else STAGES
        for stage in stages:
            if self.run_dir.finished(stage):
                resumed = stage
                continue
            if resumed is not None and model is None:
                logger.info("resuming after stage %s", resumed)
                model = self._load(resumed)
            t0, c0 = time.perf_counter(), time.process_time()
            self.history = []
            self.progress(stage, {"started": True})
            model = getattr(self, f"_stage_{stage}")(model)
            if model is not None:
                model.save(self.run_dir.file(f"{stage}.npz"))
            seconds = time.perf_counter() - t0
            self.cpu[stage] = time.process_time() - c0
            self.run_dir.mark(stage, seconds, self.history or None)
            logger.info("stage %s finished in %.1f s (%.1f s CPU)", stage, seconds,
                        self.cpu[stage])
            self.progress(stage, {"done": True, "seconds": seconds})
        final = model if model is not None else self._load(stages[-1])
        st = self.run_dir.state
        return RunResult(self.run_dir.path, final, dict(st["seconds"]), dict(st["objective"]),
                         resumed, dict(self.cpu), list(self.solves))

    def _load(self, stage: str) -> TrainModel | None:
        if stage == "data":
            return None
        return TrainModel.load(self.run_dir.file(f"{stage}.npz"))

    def _training_data(self) -> TrainingData:
        if self.data is None:
            path = self.run_dir.file("data.json")
            self.data = TrainingData.from_dict(json.loads(path.read_text(encoding="utf-8")))
        return self.data

    # ------------------------------------------------------------------ stages

    def _stage_data(self, _model: None) -> None:
        self.data = collect(self.voc, self.cls, self.p)
        atomic_write_text(self.run_dir.file("data.json"), json.dumps(self.data.to_dict()))
        return None

    def _stage_root_init(self, _model: None) -> TrainModel:
        data = self._training_data()
        pos = [p for p in data.positives if not p.truncated] or list(data.positives)
        clusters = split_by_aspect(tuple(pos), self.p.components)
        ids = {p.image_id for p in pos} | set(data.negatives[:max(1, len(data.negatives))])
        images = {i: self.voc.read_image(i) for i in sorted(ids)}
        comps = []
        for k, members in enumerate(clusters):
            cpos = [pos[i] for i in members]
            size = root_size(cpos, self.p)
            comps.append(self._train_root(k, cpos, size, images, data.negatives))
        return TrainModel(self.cls, comps, self.p.sbin, self.p.interval)

    def _train_root(self, k, cpos, size, images, negatives) -> StarComponent:
        xpos = warped_set(images, cpos, size, self.p.sbin, self.p.mirror)
        negs = [random_negatives(images[i], size, self.p.sbin, self.p.warp_neg_per_image,
                                 self.rng) for i in negatives]
        xneg = np.concatenate(negs) if negs else np.zeros((0, xpos.shape[1]), np.float32)
        if len(xneg) == 0:
            logger.warning("component %d: no negative windows; the root learns from positives "
                           "only", k)
        x = np.concatenate([xpos, xneg])
        x = np.concatenate([x, np.full((len(x), 1), 10.0, np.float32)], axis=1)
        y = np.concatenate([np.ones(len(xpos)), -np.ones(len(xneg))])
        d = x.shape[1]
        reg = opt.Regularizer(np.r_[np.ones(d - 1), 0.0], np.r_[np.ones(d - 1), 20.0],
                              np.full(d, -np.inf))
        res = self._solve(opt.Problem.from_dense(x, y), reg, "root_init")
        comp = StarComponent(res.w[:-1].reshape(size[0], size[1], -1), bias=float(res.w[-1]))
        logger.info("component %d: root %dx%d cells from %d warped positives, %d negatives, "
                    "objective %.5f", k, size[1], size[0], len(xpos), len(xneg),
                    res.objective.total)
        return comp

    def _stage_root_latent(self, model: TrainModel) -> TrainModel:
        return self._latent(model, self.p.latent_iters_root, "root_latent")

    def _stage_parts_init(self, model: TrainModel) -> TrainModel:
        comps = [add_parts(c, self.p.parts, self.p.part_size) for c in model.components]
        return TrainModel(model.name, comps, model.sbin, model.interval, model.thresh)

    def _stage_parts_latent(self, model: TrainModel) -> TrainModel:
        return self._latent(model, self.p.latent_iters_parts, "parts_latent")

    def _stage_bbox(self, model: TrainModel) -> TrainModel:
        samples: dict[int, list] = {c: [] for c in range(len(model.components))}
        for _image_id, boxes, results in self._placements(model, self.p.bbox_min_overlap,
                                                          features=False):
            for box, res in zip(boxes, results, strict=True):
                if res.best is not None:
                    pl = res.best
                    samples[pl.component].append(
                        (regression_inputs(pl.box, res.best_parts, pl.flip), pl.box,
                         np.array(box), pl.flip))
        for c, rows in samples.items():
            if not rows:
                logger.warning("component %d: no positive placement to fit a box regressor", c)
                continue
            cols = list(zip(*rows, strict=True))
            model.components[c].bbox_regressor = fit_regressor(
                np.array(cols[0]), np.array(cols[1]), np.array(cols[2]), np.array(cols[3]),
                self.p.bbox_ridge)
            logger.info("component %d: box regressor from %d positives", c, len(rows))
        return model

    def _stage_final(self, model: TrainModel) -> TrainModel:
        scores = [res.best.score
                  for _, _, results in self._placements(model, self.p.min_overlap,
                                                        features=False)
                  for res in results if res.best is not None]
        # Threshold: the score that keeps 95% of the training positives, at most -0.5.
        model.thresh = float(min(np.percentile(scores, 5), -0.5)) if scores else -0.5
        logger.info("final: threshold %.3f from %d positive scores", model.thresh, len(scores))
        return model

    # ------------------------------------------------------------------ latent training

    def _latent(self, model: TrainModel, iters: int, stage: str) -> TrainModel:
        cache = FeatureCache(model.offsets(), self.p.cache_examples, self.p.cache_bytes)
        for it in range(iters):
            keys, positives = self._latent_positives(model)
            cache.set_positives(positives, keys)
            if cache.num_pos == 0:
                logger.warning("%s: no positive has a placement overlapping >= %.2f; stopping",
                               stage, self.p.min_overlap)
                break
            self._check_loss_weight(cache.num_pos, stage)
            for rnd in range(self.p.neg_rounds):
                added = self._mine(model, cache, stage)
                w = self._solve_cache(model, cache, stage)
                # Easy negatives stay while there is room (dropping them lets the next
                # solve forget them and the model oscillate); a full cache sheds them.
                dropped = cache.shrink(w, SHRINK_MARGIN) if cache.full else 0
                logger.info("%s: iteration %d round %d: %d new hard negatives, %d easy dropped, "
                            "cache %d neg / %d pos", stage, it + 1, rnd + 1, added, dropped,
                            cache.num_neg, cache.num_pos)
                if added == 0:
                    logger.info("%s: mining found no new hard negatives; next iteration", stage)
                    break
        return model

    def _check_loss_weight(self, num_pos: int, stage: str) -> None:
        """Warn when the positives' total loss weight is too small for the regulariser.

        voc-release's C = 0.001 is for ~10^4 latent positives (C·J·N ~ 10). With a few
        hundred, the solve gives up on the positives (w ~ 0, bias below -1): the model
        ranks windows at random, even on its own training images.
        """
        weight = self.p.C * self.p.J * num_pos
        if weight < 2.0:
            logger.warning("%s: C*J*positives = %.3g (C=%g, %d positives): the regulariser "
                           "outweighs the loss; raise C to about %.2g or more", stage, weight,
                           self.p.C, num_pos, 10.0 / (self.p.J * num_pos))

    def _latent_positives(self, model: TrainModel
                          ) -> tuple[list[tuple[str, int]], list[list[tuple[int, np.ndarray]]]]:
        keys, out, skipped = [], [], 0
        for image_id, _boxes, results in self._placements(model, self.p.min_overlap):
            for b, res in enumerate(results):
                if res.placements:
                    keys.append((image_id, b))
                    out.append(res.entries)
                else:
                    skipped += 1
        if skipped:
            logger.info("latent positives: %d of %d boxes have no placement overlapping >= %.2f "
                        "(too small or cut off); skipped", skipped, skipped + len(out),
                        self.p.min_overlap)
        return keys, out

    def _placements(self, model: TrainModel, min_overlap: float, features: bool = True
                    ) -> list[tuple[str, list, list[BoxResult]]]:
        """``(image_id, boxes, one BoxResult per box)`` for every positive image."""
        by_image: dict[str, list] = {}
        for pos in self._training_data().positives:
            by_image.setdefault(pos.image_id, []).append(pos.box)
        token = model_token(model)
        units = [ImageUnit("positives", token, model, image_id, tuple(boxes), min_overlap,
                           mirror=self.p.mirror, features=features)
                 for image_id, boxes in by_image.items()]
        out = []
        for n, (unit, results) in enumerate(zip(units, self.mapper.map(units), strict=True)):
            out.append((unit.image_id, list(unit.boxes), results))
            self.progress("positives", {"mined": n + 1, "images": len(units)})
        return out

    def _mine(self, model: TrainModel, cache: FeatureCache, stage: str) -> int:
        """One mining round over the negative images, from :attr:`negpos` on.

        Images are searched a batch at a time (as many as the mapper has workers, twice
        over) and their windows added in image order; after a solve (the cache was full)
        the rest of the batch is searched again with the new model, as the serial run
        would. So the cache, hence the model, does not depend on the number of workers.
        """
        negatives = self._training_data().negatives
        n = len(negatives)
        batch = 2 * self.mapper.workers if self.mapper.workers > 1 else 1
        limit = window_limit(model, cache.max_examples, cache.max_bytes, n,
                             self.p.max_neg_per_image)
        added, k = 0, 0
        logger.info("%s: mining %d negative images from image %d (%s)", stage, n,
                    self.negpos + 1, negatives[self.negpos] if n else "-")
        while k < n:
            order = [(self.negpos + j) % n for j in range(k, min(n, k + batch))]
            token, version = model_token(model), model.version
            units = [ImageUnit("negatives", token, model, negatives[i],
                               threshold=self.p.neg_margin, limit=limit, mirror=self.p.mirror)
                     for i in order]
            # The whole batch is searched before any of it is used: a solve while adding
            # changes the model, and the workers must not see it half way.
            for i, found in zip(order, list(self.mapper.map(units)), strict=True):
                k += 1
                step, stop = self._add_windows(model, cache, stage, found)
                added += step
                self.progress(stage, {"mined": k, "images": n, "cache": cache.num_neg,
                                      "positives": cache.num_pos})
                if stop:
                    self.negpos = (i + 1) % n
                    return added
                if model.version != version:  # solved: search the rest with the new model
                    break
        return added

    def _add_windows(self, model: TrainModel, cache: FeatureCache, stage: str,
                     found: list[NegativeWindow]) -> tuple[int, bool]:
        """Add one image's windows; returns ``(added, stop the round)``."""
        added = 0
        for key, component, features in found:
            if cache.full:
                w = self._solve_cache(model, cache, stage)
                # A solve frees only a few places: mining on would solve again for
                # every handful of windows. Stop this round (voc-release: cache full).
                if cache.shrink(w, SHRINK_MARGIN) < max(1, cache.num_neg // 10):
                    logger.warning("%s: cache full of hard negatives (%d); mining stops "
                                   "for this round", stage, cache.num_neg)
                    return added, True
            added += cache.add_negative(key, component, features)
        return added, False

    def _solve_cache(self, model: TrainModel, cache: FeatureCache, stage: str) -> np.ndarray:
        """Solve the cache from its last dual variables; not at all if nothing changed.

        The model takes the solution. A cache whose examples and features are those of
        the last solve, with the model still at that solve's weights, has nothing new
        to learn: the solve is skipped (voc-release solves again; the same weights come
        back).
        """
        w0 = model.to_vector()
        last = self._solved
        if (last is not None and last[0] == id(cache) and last[1] == cache.version
                and np.array_equal(last[2], w0)):
            logger.info("%s: cache unchanged since the last solve; not solved again", stage)
            return w0
        alpha0 = cache.alpha() if self.p.solver == "dcd" else None
        res = self._solve(cache.problem(), model.regularizer(), stage, model, alpha0)
        if res.alpha is not None:
            cache.set_alpha(res.alpha)
        model.set_vector(res.w)
        self._solved = (id(cache), cache.version, model.to_vector())
        return res.w

    def _solve(self, prob: opt.Problem, reg: opt.Regularizer, stage: str,
               model: TrainModel | None = None,
               alpha0: np.ndarray | None = None) -> opt.SolveResult:
        def tick(k: int, f: float) -> None:
            self.progress(stage, {"pass": k, "objective": f, "cache": prob.num_examples})

        w0 = model.to_vector() if model is not None else None
        if self.p.solver == "sgd":
            res = opt.sgd(prob, reg, self.p.C, self.p.J, w0=w0, max_iter=self.p.sgd_iter,
                          min_iter=self.p.sgd_min_iter, seed=self.p.seed, progress=tick)
        else:
            res = opt.dcd(prob, reg, self.p.C, self.p.J, w0=w0, alpha0=alpha0,
                          passes=self.p.solver_passes, gap_tol=self.p.solver_tol,
                          seed=self.p.seed, progress=tick)
        self.history += [float(v) for v in res.history]
        self.solves.append({"stage": stage, "examples": prob.num_examples,
                            "objective": res.objective.total, "passes": res.passes,
                            "seconds": res.seconds, "warm": alpha0 is not None
                            and bool(np.any(alpha0))})
        logger.info("%s: %s solve over %d examples (%d pos)%s: objective %.6f after %d passes "
                    "(%.2f s)", stage, self.p.solver, prob.num_examples,
                    int((prob.labels > 0).sum()), ", warm start" if self.solves[-1]["warm"]
                    else "", res.objective.total, res.passes, res.seconds)
        return res
