"""Detection with a mixture of star models (voc-release5 ``imgdetect`` + ``bboxpred_get``).

For every root level ``l`` and component ``c`` the score of a root placed at ``(y, x)``
is::

    root_c(l)[y, x] + bias_c + loc_c[octave(l)]
      + sum_p  DT_p(l - interval)[2y + ay_p - pady, 2x + ax_p - padx] + bias_p + loc_p

where ``DT_p`` is the generalized distance transform of part ``p``'s response at twice
the root resolution. Scores are maxed over components (mirrored ones included; ties go
to the first), kept where ``> threshold``, turned into detection windows and filter
boxes, refined by the bounding-box regressor, clipped to the image and reduced with
voc-release's NMS (overlap 0.5 of the lower-scoring box).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from viewfinder.dpm.convolve import filter_responses
from viewfinder.dpm.dt import score_level_kernel
from viewfinder.dpm.features import _as_rgb
from viewfinder.dpm.model import Model
from viewfinder.dpm.postprocess import NMS_OVERLAP, clip_voc_boxes, predict_boxes, voc_nms
from viewfinder.dpm.pyramid import Pyramid, feature_pyramid
from viewfinder.errors import ShapeError, check_shape
from viewfinder.structures import Detections

__all__ = ["DPMDetections", "detect", "responses", "score_levels", "score_pyramid"]


@dataclass(frozen=True)
class DPMDetections:
    """DPM detections in one image (devkit pixel corners: 1-based, inclusive).

    Attributes:
        boxes: ``(N, 4)`` float64 predicted, clipped boxes ``x1, y1, x2, y2``.
        scores: ``(N,)`` float64, decreasing.
        components: ``(N,)`` int64 component of each detection.
        windows: ``(N, 4)`` detection windows before box prediction (unclipped).
        part_boxes: ``(N, F, 4)`` root (index 0) and part boxes; rows of components with
            fewer parts are NaN.
        levels: ``(N,)`` pyramid level of each root.
        image_size: ``(height, width)``.
        name: Class name.
    """

    boxes: np.ndarray
    scores: np.ndarray
    components: np.ndarray
    windows: np.ndarray
    part_boxes: np.ndarray
    levels: np.ndarray
    image_size: tuple[int, int]
    name: str = ""

    def __post_init__(self) -> None:
        n = np.asarray(self.scores).reshape(-1).shape[0]
        fields = {"boxes": ((n, 4), np.float64), "scores": ((n,), np.float64),
                  "components": ((n,), np.int64), "windows": ((n, 4), np.float64),
                  "levels": ((n,), np.int64)}
        for name, (shape, dtype) in fields.items():
            arr = np.asarray(getattr(self, name), dtype=dtype)
            arr = arr.reshape(shape) if arr.size == 0 else arr
            check_shape(arr, shape, f"DPMDetections.{name}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        parts = np.asarray(self.part_boxes, dtype=np.float64)
        if parts.size == 0:
            parts = parts.reshape(n, 0, 4)
        check_shape(parts, (n, None, 4), "DPMDetections.part_boxes")
        parts.setflags(write=False)
        object.__setattr__(self, "part_boxes", parts)
        if n and not np.isfinite(self.boxes).all():
            raise ShapeError("DPMDetections.boxes: expected finite values, got NaN or inf")

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def to_detections(self, names: tuple[str, ...] | None = None, class_id: int = 0
                      ) -> Detections:
        """As :class:`viewfinder.structures.Detections` (continuous 0-based corners), with
        the root and part boxes in ``parts`` and the component in ``data["component"]``."""
        boxes = self.boxes.copy()
        boxes[:, :2] -= 1
        parts = self.part_boxes.copy()
        parts[..., :2] -= 1
        names = names if names is not None else ((self.name,) if self.name else ())
        return Detections(boxes, self.scores, np.full(len(self), class_id, np.int64), names,
                          parts=parts, data={"component": self.components})

    def to_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready dicts: devkit ``box``, ``score``, ``component``, ``parts``."""
        return [{"box": [round(float(v), 2) for v in self.boxes[i]],
                 "score": round(float(self.scores[i]), 6),
                 "component": int(self.components[i]),
                 "parts": [[round(float(v), 2) for v in b] for b in self.part_boxes[i]
                           if np.isfinite(b).all()]}
                for i in range(len(self))]


@dataclass
class _Candidates:
    """Above-threshold root placements, with their part placements."""

    level: list[int]
    y: list[np.ndarray]
    x: list[np.ndarray]
    comp: list[np.ndarray]
    score: list[np.ndarray]
    parts: list[np.ndarray]  # (n, P, 2) part (iy, ix) at the part level, -1 if absent


def _octave(level: int, interval: int) -> int:
    """``loc_feat.m``: 0 in the first octave, 1 in the second, 2 above."""
    return min(level // interval, 2)


def _filter_banks(model: Model) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...],
                                         dict[int, int], dict[int, int]]:
    """Root and part filters as stable tuples (their FFTs are cached by identity)."""
    cache = model.__dict__.get("_banks")
    if cache is None:
        roots = sorted({c.root for c in model.components})
        parts = sorted({p.filter for c in model.components for p in c.parts})
        cache = (tuple(model.filters[i] for i in roots), tuple(model.filters[i] for i in parts),
                 {f: k for k, f in enumerate(roots)}, {f: k for k, f in enumerate(parts)})
        object.__setattr__(model, "_banks", cache)
    return cache


def responses(model: Model, pyr: Pyramid, method: str = "auto"
              ) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]]]:
    """Root filter responses on the root levels and part responses on the part levels.

    Returns:
        ``(root_resp, part_resp)``: ``root_resp[l - interval][k]`` for the model's distinct
        root filters, ``part_resp[l][k]`` for its distinct part filters (sorted by filter index).
    """
    roots, parts, _, _ = _filter_banks(model)
    iv = pyr.interval
    return (filter_responses(pyr.levels[iv:], roots, method),
            filter_responses(pyr.levels[:max(len(pyr) - iv, 0)], parts, method))


@dataclass(frozen=True)
class _Plan:
    """The model's star structure as flat arrays for :func:`score_level_kernel`."""

    comp_root: np.ndarray  # (C,) root-bank index
    comp_offset: np.ndarray  # (3, C) bias + loc per octave
    comp_jobs: np.ndarray  # (C + 1,) job ranges
    job_filter: np.ndarray  # (J,) part-bank index
    job_def: np.ndarray  # (J, 4)
    job_origin: np.ndarray  # (J, 2) anchor - padding (y, x)
    job_bias: np.ndarray  # (3, J) bias + loc per octave (of the part level)
    job_index: np.ndarray  # (C, Pmax) job of part j of component c, -1 if none


def _plan(model: Model, pyr: Pyramid) -> _Plan:
    _, _, root_index, part_index = _filter_banks(model)
    jobs = [(c, j, p) for c, comp in enumerate(model.components) for j, p in enumerate(comp.parts)]
    ncomp = len(model.components)
    pmax = max((len(c.parts) for c in model.components), default=0)
    job_index = np.full((ncomp, pmax), -1, np.int64)
    for k, (c, j, _) in enumerate(jobs):
        job_index[c, j] = k
    counts = np.bincount([c for c, _, _ in jobs], minlength=ncomp) if jobs else np.zeros(ncomp)
    return _Plan(
        np.array([root_index[c.root] for c in model.components], np.int64),
        np.array([[c.bias + c.loc[o] for c in model.components] for o in range(3)], np.float64),
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        np.array([part_index[p.filter] for _, _, p in jobs], np.int64),
        np.array([p.deformation for _, _, p in jobs], np.float64).reshape(-1, 4),
        np.array([(p.anchor[1] - pyr.pady, p.anchor[0] - pyr.padx) for _, _, p in jobs],
                 np.int64).reshape(-1, 2),
        np.array([[p.bias + p.loc[o] for _, _, p in jobs] for o in range(3)],
                 np.float64).reshape(3, -1),
        job_index)


def _stack(resps: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(K, H, W)`` float32 holding ``resps[k]`` at ``[k, :h_k, :w_k]``, and ``(K, 2)`` shapes."""
    hw = np.array([r.shape for r in resps], np.int64).reshape(-1, 2)
    base = resps[0].base if resps else None
    if (isinstance(base, np.ndarray) and base.ndim == 3 and base.dtype == np.float32
            and base.shape[0] == len(resps) and base.flags.c_contiguous
            and all(r.base is base and r.strides == base.strides[1:]
                    and r.__array_interface__["data"][0]
                    == base.__array_interface__["data"][0] + k * base.strides[0]
                    for k, r in enumerate(resps))):
        return base, hw
    h, w = (int(hw[:, 0].max()), int(hw[:, 1].max())) if len(resps) else (0, 0)
    out = np.zeros((len(resps), h, w), np.float32)
    for k, r in enumerate(resps):
        out[k, :r.shape[0], :r.shape[1]] = r
    return out, hw


def _score_level(plan: _Plan, level: int, iv: int, roots: list[np.ndarray],
                 parts: list[np.ndarray] | None) -> tuple | None:
    """Best score, component and part placements of every root position of one level."""
    comp_root = plan.comp_root.copy()
    root_stack, root_hw = _stack(roots)
    part_stack, part_hw = _stack(parts) if parts else (np.zeros((0, 0, 0), np.float32),
                                                      np.zeros((0, 2), np.int64))
    for c in range(comp_root.shape[0]):
        jobs = plan.job_filter[plan.comp_jobs[c]:plan.comp_jobs[c + 1]]
        if (root_hw[comp_root[c]] == 0).any() or (jobs.size and (
                not parts or (part_hw[jobs] == 0).any(axis=1).any())):
            comp_root[c] = -1  # no root placement, or a part that fits nowhere
    if (comp_root < 0).all():
        return None
    return score_level_kernel(
        root_stack, root_hw, part_stack, part_hw, comp_root, plan.comp_offset[_octave(level, iv)],
        plan.comp_jobs, plan.job_filter, plan.job_def, plan.job_origin,
        plan.job_bias[_octave(level - iv, iv)])


def score_levels(model: Model, pyr: Pyramid, root_resp: list, part_resp: list,
                 threshold: float) -> _Candidates:
    """Distance transforms, component scores and their max, kept above ``threshold``."""
    plan = _plan(model, pyr)
    iv = pyr.interval
    cand = _Candidates([], [], [], [], [], [])

    def level_job(li: int) -> tuple[int, tuple | None]:
        presp = part_resp[li] if li < len(part_resp) else None
        return iv + li, _score_level(plan, iv + li, iv, root_resp[li], presp)

    workers = max(1, min(len(pyr) - iv, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        for level, res in pool.map(level_job, range(len(pyr) - iv)):
            if res is not None:
                _collect(cand, level, res, plan.job_index, threshold)
    return cand


def score_pyramid(model: Model, pyr: Pyramid, threshold: float, method: str = "auto",
                  timings: dict[str, float] | None = None) -> _Candidates:
    """Root placements scoring above ``threshold`` at every root level (max over components)."""
    t0 = time.perf_counter()
    root_resp, part_resp = responses(model, pyr, method)
    t1 = time.perf_counter()
    cand = score_levels(model, pyr, root_resp, part_resp, threshold)
    if timings is not None:
        timings["convolution"] = timings.get("convolution", 0.0) + t1 - t0
        timings["distance transforms"] = (timings.get("distance transforms", 0.0)
                                          + time.perf_counter() - t1)
    return cand


def _collect(cand: _Candidates, level: int, res: tuple, job_index: np.ndarray,
             threshold: float) -> None:
    """Keep root positions scoring above the threshold, with their parts' placements."""
    best, comp, iy, ix = res
    ys, xs = np.nonzero(best > threshold)
    if ys.size == 0:
        return
    cs = comp[ys, xs]
    jobs = job_index[cs]  # (n, Pmax)
    placed = np.full((ys.size, jobs.shape[1], 2), -1, np.int32)
    ok = jobs >= 0
    rows = np.broadcast_to(ys[:, None], jobs.shape)[ok]
    cols = np.broadcast_to(xs[:, None], jobs.shape)[ok]
    placed[ok, 0] = iy[jobs[ok], rows, cols]
    placed[ok, 1] = ix[jobs[ok], rows, cols]
    cand.level.append(level)
    cand.y.append(ys)
    cand.x.append(xs)
    cand.comp.append(cs)
    cand.score.append(best[ys, xs])
    cand.parts.append(placed)


def _geometry(model: Model) -> tuple[np.ndarray, ...]:
    """Per component: shiftwindow, detwindow (y, x), root filter size, part filter sizes."""
    nf = 1 + max((len(c.parts) for c in model.components), default=0)
    shift = np.array([c.shiftwindow for c in model.components], np.float64).reshape(-1, 2)
    det = np.array([c.detwindow for c in model.components], np.float64).reshape(-1, 2)
    size = np.full((len(model.components), nf, 2), np.nan)  # (h, w) per filter
    for c, comp in enumerate(model.components):
        size[c, 0] = model.filters[comp.root].shape[:2]
        for j, part in enumerate(comp.parts):
            size[c, 1 + j] = model.filters[part.filter].shape[:2]
    return shift, det, size


def _boxes(model: Model, pyr: Pyramid, cand: _Candidates) -> tuple[np.ndarray, ...]:
    """Detection windows and filter boxes (devkit corners) of the candidates."""
    nf = 1 + max((len(c.parts) for c in model.components), default=0)
    if not cand.level:
        return (np.zeros((0, 4)), np.zeros((0, nf, 4)), np.zeros(0, np.int64), np.zeros(0),
                np.zeros(0, np.int64))
    shift, det, size = _geometry(model)
    counts = [y.shape[0] for y in cand.y]
    levels = np.repeat(np.asarray(cand.level, np.int64), counts)
    comps = np.concatenate(cand.comp).astype(np.int64)
    y = np.concatenate(cand.y).astype(np.float64)
    x = np.concatenate(cand.x).astype(np.float64)
    parts = np.concatenate(cand.parts).astype(np.float64)  # (n, Pmax, 2) (iy, ix)
    scale = pyr.sbin / np.asarray(pyr.scales, np.float64)[levels]
    pscale = pyr.sbin / np.asarray(pyr.scales, np.float64)[levels - pyr.interval]
    wx1 = (x - shift[comps, 1] - pyr.padx) * scale + 1
    wy1 = (y - shift[comps, 0] - pyr.pady) * scale + 1
    windows = np.stack([wx1, wy1, wx1 + det[comps, 1] * scale - 1,
                        wy1 + det[comps, 0] * scale - 1], axis=1)
    fb = np.empty((comps.shape[0], nf, 4))
    sz = size[comps]  # (n, nf, 2)
    origin = np.empty((comps.shape[0], nf, 2))  # (x1, y1)
    origin[:, 0, 0], origin[:, 0, 1] = (x - pyr.padx) * scale + 1, (y - pyr.pady) * scale + 1
    ps = pscale[:, None]
    origin[:, 1:, 0] = (parts[:, :nf - 1, 1] - pyr.padx) * ps + 1
    origin[:, 1:, 1] = (parts[:, :nf - 1, 0] - pyr.pady) * ps + 1
    fscale = np.concatenate([scale[:, None], np.broadcast_to(ps, (ps.shape[0], nf - 1))], axis=1)
    fb[..., 0], fb[..., 1] = origin[..., 0], origin[..., 1]
    fb[..., 2] = origin[..., 0] + sz[..., 1] * fscale - 1
    fb[..., 3] = origin[..., 1] + sz[..., 0] * fscale - 1
    fb[np.isnan(sz[..., 0])] = np.nan
    return windows, fb, comps, np.concatenate(cand.score).astype(np.float64), levels


def _predict(model: Model, windows: np.ndarray, fboxes: np.ndarray,
             comps: np.ndarray) -> np.ndarray:
    out = windows.copy()
    for c, comp in enumerate(model.components):
        idx = np.nonzero(comps == c)[0]
        if idx.size and comp.bbox_regressor is not None:
            nf = 1 + len(comp.parts)
            out[idx] = predict_boxes(windows[idx], fboxes[idx, :nf], comp.bbox_regressor)
    return out


def _too_small(model: Model, size: tuple[int, ...]) -> bool:
    """True when the image is smaller than every root filter at the finest root scale.

    voc-release5 would still place roots mostly in the padding; such "detections" of an
    object larger than the whole image are meaningless, so none are reported.
    """
    cell = model.sbin / (2.0 if model.extra_octave else 1.0)
    return all(size[0] < model.filters[c.root].shape[0] * cell
               or size[1] < model.filters[c.root].shape[1] * cell for c in model.components)


def _empty(model: Model, size: tuple[int, ...]) -> DPMDetections:
    nf = 1 + max((len(c.parts) for c in model.components), default=0)
    return DPMDetections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 4)),
                         np.zeros((0, nf, 4)), np.zeros(0, np.int64), (int(size[0]), int(size[1])),
                         model.name)


def detect(
    model: Model,
    image: np.ndarray,
    threshold: float | None = None,
    *,
    bbox_prediction: bool = True,
    nms_overlap: float | None = NMS_OVERLAP,
    method: str = "auto",
    timings: dict[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DPMDetections:
    """Detect objects of ``model``'s class in an image.

    Args:
        model: The model (:func:`viewfinder.dpm.model.load_voc_release5`).
        image: ``(H, W, 3)`` RGB (or ``(H, W)`` gray) with values 0..255.
        threshold: Keep scores ``> threshold``; None uses ``model.thresh`` (high recall).
        bbox_prediction: Refine boxes with the model's regressors.
        nms_overlap: voc-release NMS overlap; None keeps every detection.
        method: Convolution path, ``"auto"``, ``"fft"`` or ``"direct"``.
        timings: If given, seconds per stage are added under ``"features"``,
            ``"convolution"``, ``"distance transforms"`` and ``"rest"``.
        progress: Optional ``callback(done, total)`` while the pyramid is built.

    Returns:
        :class:`DPMDetections`, best first. An image smaller than every root filter (at
        the finest root scale, ``filter cells x sbin`` pixels) has no detections.

    Raises:
        ShapeError: the image is not gray or 3-channel.
        SizeError: the image is smaller than 3 × 3 pixels.
    """
    t_start = time.perf_counter()
    im = _as_rgb(image)
    thr = model.thresh if threshold is None else float(threshold)
    if _too_small(model, im.shape[:2]):
        return _empty(model, im.shape[:2])
    pyr = feature_pyramid(im, model.sbin, model.interval, model.padding, model.extra_octave,
                          progress)
    t_feat = time.perf_counter()
    stage: dict[str, float] = {}
    cand = score_pyramid(model, pyr, thr, method, stage)
    windows, fboxes, comps, scores, levels = _boxes(model, pyr, cand)
    boxes = _predict(model, windows, fboxes, comps) if bbox_prediction else windows
    h, w = im.shape[:2]
    boxes, keep = clip_voc_boxes(boxes, w, h)
    sel = keep[voc_nms(boxes, scores[keep], nms_overlap)] if nms_overlap is not None else keep
    order = sel[np.argsort(-scores[sel], kind="stable")]
    boxes_by_index = dict(zip(keep.tolist(), boxes, strict=True))
    result = DPMDetections(
        np.array([boxes_by_index[i] for i in order.tolist()]).reshape(-1, 4), scores[order],
        comps[order], windows[order], fboxes[order], levels[order], (h, w), model.name)
    if timings is not None:
        total = time.perf_counter() - t_start
        timings["features"] = timings.get("features", 0.0) + t_feat - t_start
        for key, value in stage.items():
            timings[key] = timings.get(key, 0.0) + value
        timings["rest"] = timings.get("rest", 0.0) + total - (t_feat - t_start) - sum(
            stage.values())
    return result
