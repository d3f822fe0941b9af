"""Deformable part models: the data types and the voc-release5 ``.mat`` importer.

A :class:`Model` is a mixture of star models, as in FFLD's ``Mixture``: each
:class:`Component` has one root filter and parts (:class:`Part`) placed at twice the
root's resolution, each with a quadratic deformation cost. Mirrored components
(voc-release5 trains left/right pairs that share weights) are stored as ordinary
components whose filters are already mirrored; ``Component.mirror_of`` names the
component it mirrors.

Conventions (voc-release5's, kept so the published weights apply unchanged):

* Filters are ``(h, w, 32)`` float32 HOG weights; the score of a filter at cell
  ``(y, x)`` of a padded pyramid level is the sum of ``filter * level[y:y+h, x:x+w]``.
* A part's ``anchor`` ``(ax, ay)`` is its ideal top-left cell at part resolution,
  relative to ``2 * (root top-left) - pad`` (see :mod:`viewfinder.dpm.detect`).
* ``deformation = (ax, bx, ay, by)``: placing the part ``(dx, dy)`` cells from its
  anchor costs ``ax*dx² + bx*dx + ay*dy² + by*dy`` with ``dx = anchor - placement``
  (``dt.cc``'s sign convention).
* ``bias`` already includes voc-release5's bias feature value (``features.bias`` = 10).
* ``loc`` are the three octave weights of ``loc_feat.m``: added to the score of a
  level in the first, the second, or a later octave of the pyramid.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.dpm.features import FEATURE_DIM, flip_features
from viewfinder.errors import ModelError, ShapeError, check_shape
from viewfinder.fileio import check_readable

__all__ = ["BIAS_FEATURE", "Component", "Model", "Part", "load_voc_release5"]

#: The constant feature multiplied by every bias weight (voc-release5 ``features.bias``).
BIAS_FEATURE = 10.0
# Fields of the voc-release5 model struct that detection needs.
_REQUIRED = ("filters", "rules", "symbols", "start", "blocks", "sbin", "interval", "thresh",
             "maxsize", "type")


def _vec(value: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    check_shape(arr, (n,), name)
    return arr


@dataclass(frozen=True)
class Part:
    """One part of a star model.

    Attributes:
        filter: Index into :attr:`Model.filters`.
        anchor: ``(ax, ay)`` ideal top-left cell at part resolution (see module notes).
        deformation: ``(4,)`` ``(ax, bx, ay, by)`` quadratic deformation weights.
        bias: Score added to the part (usually 0).
        loc: ``(3,)`` per-octave score offsets (usually 0).
    """

    filter: int
    anchor: tuple[int, int]
    deformation: np.ndarray
    bias: float = 0.0
    loc: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "deformation", _vec(self.deformation, 4, "Part.deformation"))
        object.__setattr__(self, "loc", _vec(self.loc, 3, "Part.loc"))
        object.__setattr__(self, "anchor", (int(self.anchor[0]), int(self.anchor[1])))


@dataclass(frozen=True)
class Component:
    """A star model: root filter, parts, bias and bounding-box regressor.

    Attributes:
        root: Index of the root filter in :attr:`Model.filters`.
        parts: The parts.
        bias: Score offset of the component (bias weight × :data:`BIAS_FEATURE`).
        loc: ``(3,)`` per-octave score offsets.
        detwindow: ``(h, w)`` detection window in root cells (voc-release5 ``detwindow``).
        shiftwindow: ``(dy, dx)`` shift of the window from the root's top-left cell.
        bbox_regressor: ``(2 * (1 + P) + 1, 4)`` linear map from the normalised filter
            centres (root, then parts, then a constant 1) to the box corrections
            ``(dx1, dy1, dx2, dy2)`` in units of the window size, or ``None``.
        mirror_of: Index of the component this one mirrors, or ``None``.
    """

    root: int
    parts: tuple[Part, ...]
    bias: float
    detwindow: tuple[int, int]
    loc: np.ndarray = field(default_factory=lambda: np.zeros(3))
    shiftwindow: tuple[int, int] = (0, 0)
    bbox_regressor: np.ndarray | None = None
    mirror_of: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "loc", _vec(self.loc, 3, "Component.loc"))
        object.__setattr__(self, "parts", tuple(self.parts))
        if self.bbox_regressor is not None:
            reg = np.asarray(self.bbox_regressor, dtype=np.float64)
            check_shape(reg, (2 * (1 + len(self.parts)) + 1, 4), "Component.bbox_regressor")
            object.__setattr__(self, "bbox_regressor", reg)


@dataclass(frozen=True)
class Model:
    """A mixture of star-structured deformable part models.

    Attributes:
        name: Class name (e.g. ``"person"``).
        filters: ``(h, w, 32)`` float32 filters (mirrored filters materialised).
        components: The mixture components.
        thresh: Default detection threshold (voc-release5 ``model.thresh``).
        sbin: Root cell size in pixels.
        interval: Pyramid levels per octave.
        maxsize: ``(h, w)`` largest root filter in cells; the pyramid padding.
        extra_octave: Whether the pyramid has an extra ``sbin/4`` octave.
    """

    name: str
    filters: tuple[np.ndarray, ...]
    components: tuple[Component, ...]
    thresh: float
    sbin: int = 8
    interval: int = 10
    maxsize: tuple[int, int] = (0, 0)
    extra_octave: bool = False

    def __post_init__(self) -> None:
        filters = tuple(np.ascontiguousarray(f, dtype=np.float32) for f in self.filters)
        for i, f in enumerate(filters):
            check_shape(f, (None, None, FEATURE_DIM), f"Model.filters[{i}]")
        object.__setattr__(self, "filters", filters)
        object.__setattr__(self, "components", tuple(self.components))
        for c, comp in enumerate(self.components):
            for idx in (comp.root, *(p.filter for p in comp.parts)):
                if not 0 <= idx < len(filters):
                    raise ShapeError(f"Model.components[{c}]: filter index {idx} out of range "
                                     f"[0, {len(filters)})")
        if self.maxsize == (0, 0) and self.components:
            sizes = np.array([filters[c.root].shape[:2] for c in self.components])
            object.__setattr__(self, "maxsize", tuple(int(v) for v in sizes.max(axis=0)))
        object.__setattr__(self, "maxsize", (int(self.maxsize[0]), int(self.maxsize[1])))

    @property
    def padding(self) -> tuple[int, int]:
        """``(padx, pady)`` pyramid padding in cells (``getpadding.m``)."""
        return self.maxsize[1], self.maxsize[0]

    def describe(self) -> str:
        """One line: class, components, parts, filter sizes and threshold."""
        roots = ", ".join(f"{self.filters[c.root].shape[1]}x{self.filters[c.root].shape[0]}"
                          for c in self.components)
        parts = sum(len(c.parts) for c in self.components)
        return (f"{self.name}: {len(self.components)} components (roots {roots}), "
                f"{parts} parts, sbin {self.sbin}, interval {self.interval}, "
                f"threshold {self.thresh:.3f}")


# --------------------------------------------------------------------------- voc-release5


class _Mat:
    """Access to the voc-release5 ``model`` struct with one-line errors."""

    def __init__(self, struct: Any, path: Path) -> None:
        self.m = struct
        self.path = path

    def fail(self, what: str) -> ModelError:
        return ModelError(f"{self.path}: not a voc-release5 DPM model: {what}")

    def ints(self, value: Any, name: str, n: int | None = None) -> list[int]:
        """A numeric scalar or vector of whole numbers (``n`` of them when given)."""
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf" or arr.ndim > 1 or arr.size == 0 \
                or (n is not None and arr.size != n):
            want = "a whole number" if n == 1 else f"{n or 'some'} whole numbers"
            raise self.fail(f"'{name}' must be {want}, got {_describe(arr)}")
        vals = arr.astype(np.float64).reshape(-1)
        if not (np.isfinite(vals).all() and (vals == np.round(vals)).all()
                and np.abs(vals).max() < 2 ** 31):
            raise self.fail(f"'{name}' must be whole numbers, got {vals.tolist()}")
        return [int(v) for v in vals]

    def integer(self, value: Any, name: str) -> int:
        return self.ints(value, name, 1)[0]

    def number(self, value: Any, name: str) -> float:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf" or arr.size != 1 or not math.isfinite(float(arr)):
            raise self.fail(f"'{name}' must be a finite number, got {_describe(arr)}")
        return float(arr)

    def index(self, value: Any, items: Any, name: str) -> Any:
        """``items[value - 1]`` for a 1-based index read from the file."""
        items = np.atleast_1d(items)
        i = self.integer(value, name)
        if not 1 <= i <= items.size:
            raise self.fail(f"'{name}' {i} is out of range [1, {items.size}]")
        return items.reshape(-1)[i - 1]

    def block(self, ref: Any, flip: bool = False) -> np.ndarray:
        """``model_get_block.m``: a block's weights in its shape, mirrored if asked."""
        b = self.index(ref.blocklabel, self.m.blocks, "blocklabel")
        shape = tuple(self.ints(np.atleast_1d(b.shape), "blocks.shape"))
        w = np.asarray(b.w)
        if w.dtype.kind not in "biuf" or w.size != math.prod(shape) or min(shape) < 0:
            raise self.fail(f"block {int(ref.blocklabel)} has {_describe(w)} for shape "
                            f"{list(shape)}")
        w = w.astype(np.float64).reshape(shape, order="F")
        if not np.isfinite(w).all():
            raise self.fail(f"block {int(ref.blocklabel)} has non-finite weights")
        if flip and b.type == "F":
            w = flip_features(w)
        elif flip and b.type == "D":
            w = w.reshape(-1).copy()
            w[1] = -w[1]
        return w

    def rules(self, symbol: int) -> list[Any]:
        return list(np.atleast_1d(self.index(symbol, self.m.rules, "rules symbol")))

    def symbol(self, symbol: int) -> Any:
        return self.index(symbol, self.m.symbols, "symbol")

    def filter_of(self, symbol: int) -> int:
        s = self.symbol(symbol)
        if s.type != "T":
            raise self.fail(f"symbol {symbol} is not a filter terminal")
        return self.integer(s.filter, "symbols.filter") - 1


def _describe(arr: np.ndarray) -> str:
    """What a value read from the .mat file is, for a message."""
    if arr.dtype.kind == "U":
        return f"text {str(arr.reshape(-1)[0])[:20]!r}" if arr.size == 1 else "text"
    kind = "a struct" if arr.dtype.kind == "O" else f"{arr.dtype.name} values"
    return f"{kind} of shape {arr.shape}"


def _deformable(mat: _Mat, symbol: int) -> tuple[int, np.ndarray | None, float, np.ndarray]:
    """Resolve a right-hand-side symbol into (filter, deformation, bias, loc)."""
    if mat.symbol(symbol).type == "T":
        return mat.filter_of(symbol), None, 0.0, np.zeros(3)
    rules = mat.rules(symbol)
    if len(rules) != 1 or rules[0].type != "D":
        raise ModelError(f"{mat.path}: grammar models are not supported (symbol {symbol} "
                         f"has {len(rules)} rules); use a mixture-of-stars model")
    r = rules[0]
    dfm = getattr(r, "def")
    deformation = mat.block(dfm, bool(mat.integer(dfm.flip, "rules.def.flip"))).reshape(-1)
    bias = float(mat.block(r.offset).reshape(-1)[0]) * BIAS_FEATURE
    loc = mat.block(r.loc).reshape(-1) if hasattr(r, "loc") else np.zeros(3)
    return mat.filter_of(mat.integer(r.rhs, "rules.rhs")), deformation, bias, loc


def _regressor(mat: _Mat, c: int, filter_ids: list[int]) -> np.ndarray | None:
    """bboxpred coefficients reordered from filter-index order to root-then-parts order."""
    preds = np.atleast_1d(getattr(mat.m, "bboxpred", np.zeros(0)))
    if c >= preds.size or not hasattr(preds[c], "x1"):
        return None
    coef = np.stack([np.asarray(getattr(preds[c], k), np.float64).reshape(-1)
                     for k in ("x1", "y1", "x2", "y2")], axis=1)
    if coef.shape[0] != 2 * len(filter_ids) + 1:
        return None
    rank = np.argsort(np.argsort(filter_ids))  # position of each filter in sorted order
    rows = np.concatenate([[2 * r, 2 * r + 1] for r in rank] + [[coef.shape[0] - 1]])
    return coef[rows]


def _component(mat: _Mat, rule: Any, c: int) -> tuple[Component, bool]:
    rhs = mat.ints(np.atleast_1d(rule.rhs), "rules.rhs")
    anchors = [mat.ints(a, "rules.anchor", 3) for a in np.atleast_1d(rule.anchor)]
    if len(anchors) != len(rhs):
        raise mat.fail(f"component {c + 1} has {len(rhs)} symbols but {len(anchors)} anchors")
    root, root_def, root_bias, root_loc = _deformable(mat, rhs[0])
    if root_def is not None and min(root_def[0], root_def[2]) < 100:
        raise ModelError(f"{mat.path}: component {c + 1}: deformable roots are not supported")
    parts = []
    for symbol, anchor in zip(rhs[1:], anchors[1:], strict=True):
        fid, dfm, bias, loc = _deformable(mat, symbol)
        if int(anchor[2]) != 1:
            raise mat.fail(f"component {c + 1}: part anchor scale {anchor[2]}, expected 1")
        parts.append(Part(fid, (int(anchor[0]), int(anchor[1])),
                          dfm if dfm is not None else np.array([1e3, 0, 1e3, 0]), bias, loc))
    bias = float(mat.block(rule.offset).reshape(-1)[0]) * BIAS_FEATURE + root_bias
    loc = (mat.block(rule.loc).reshape(-1) if hasattr(rule, "loc") else np.zeros(3)) + root_loc
    flipped = bool(mat.integer(mat.index(root + 1, mat.m.filters, "symbols.filter").flip,
                           "filters.flip"))
    comp = Component(
        root=root, parts=tuple(parts), bias=bias, loc=loc,
        detwindow=tuple(mat.ints(np.atleast_1d(rule.detwindow), "rules.detwindow", 2)),
        shiftwindow=tuple(mat.ints(np.atleast_1d(rule.shiftwindow), "rules.shiftwindow", 2)),
        bbox_regressor=_regressor(mat, c, [root] + [p.filter for p in parts]),
    )
    return comp, flipped


def _mirrors(comps: list[Component], flips: list[bool]) -> list[Component]:
    """Mark each flipped component as the mirror of the unflipped one before it."""
    out = []
    for i, (comp, flipped) in enumerate(zip(comps, flips, strict=True)):
        mirror = i - 1 if flipped and i > 0 and not flips[i - 1] else None
        out.append(Component(comp.root, comp.parts, comp.bias, comp.detwindow, comp.loc,
                             comp.shiftwindow, comp.bbox_regressor, mirror))
    return out


def _load_struct(path: Path) -> Any:
    import scipy.io

    from viewfinder.dpm.matcheck import checked_mat_bytes

    # scipy's MAT reader trusts the file (a bad element type segfaults it): check every
    # element first, then let scipy parse exactly the checked (inflated) bytes.
    checked = checked_mat_bytes(path.read_bytes(), str(path))
    try:
        data = scipy.io.loadmat(io.BytesIO(checked), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError on non-.mat files
        raise ModelError(f"{path}: not a MATLAB .mat file ({exc})") from exc
    if "model" not in data:
        raise ModelError(f"{path}: not a voc-release5 DPM model: no variable 'model'")
    m = data["model"]
    for name in _REQUIRED:
        if not hasattr(m, name):
            raise ModelError(f"{path}: not a voc-release5 DPM model: field 'model.{name}' "
                             f"is missing")
    return m


def load_voc_release5(path: str | os.PathLike[str]) -> Model:
    """Load a voc-release5 model (e.g. ``VOC2007_person_final.mat``).

    Args:
        path: The ``.mat`` file holding the ``model`` struct.

    Returns:
        The :class:`Model`, with mirrored components materialised.

    Raises:
        InputFileError: the file is missing or unreadable.
        ModelError: the file is not a voc-release5 mixture model (the message names the
            missing field), or it is a grammar model.
    """
    p = check_readable(path, "model file")
    mat = _Mat(_load_struct(p), p)
    try:
        return _model(mat)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
        # a field of the wrong kind deeper than the named checks (a struct replaced by
        # text, a missing sub-field): still this file's fault, one line
        raise mat.fail(f"malformed struct ({type(exc).__name__}: "
                       f"{' '.join(str(exc).split())})") from exc


def _model(mat: _Mat) -> Model:
    p = mat.path
    if str(mat.m.type) != "M":
        raise ModelError(f"{p}: grammar models (type {mat.m.type!r}) are not supported; "
                         f"expected a mixture model (type 'M')")
    filters = []
    for i, f in enumerate(np.atleast_1d(mat.m.filters)):
        w = mat.block(f, bool(f.flip))
        if w.ndim != 3 or w.shape[2] != FEATURE_DIM:
            raise mat.fail(f"filter {i + 1} has shape {w.shape}, expected (h, w, 32)")
        filters.append(w.astype(np.float32))
    comps, flips = [], []
    for c, rule in enumerate(mat.rules(mat.integer(mat.m.start, "start"))):
        comp, flipped = _component(mat, rule, c)
        comps.append(comp)
        flips.append(flipped)
    features = getattr(mat.m, "features", None)
    return Model(
        name=str(getattr(mat.m, "class", p.stem)) or p.stem,
        filters=tuple(filters),
        components=tuple(_mirrors(comps, flips)),
        thresh=mat.number(mat.m.thresh, "thresh"),
        sbin=mat.integer(mat.m.sbin, "sbin"),
        interval=mat.integer(mat.m.interval, "interval"),
        maxsize=tuple(mat.ints(np.atleast_1d(mat.m.maxsize), "maxsize", 2)),
        extra_octave=bool(getattr(features, "extra_octave", 0)) if features is not None else False,
    )
