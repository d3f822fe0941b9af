"""The model while it is trained: star components, their weight-vector layout, export.

Each :class:`StarComponent` owns one contiguous segment of the weight vector:
``[root, part_1 filter, part_1 deformation, ..., bias]``, so a latent placement's
feature vector is one dense segment (see :mod:`viewfinder.dpm.train.optimize`).
Mirroring is voc-release's: a component is also scored left-right flipped, with its
filters mirrored (:func:`viewfinder.dpm.features.flip_features`), its anchors
reflected and the sign of its linear x deformation weight flipped; the flipped
placement's features are mirrored back so both orientations train one set of
weights (voc-release5's shared blocks of mirrored components).

Conventions are those of :mod:`viewfinder.dpm.model`: a part of a root at padded
root-level cell ``(rx, ry)`` sits at padded part-level cell
``(2 rx - padx + ax, 2 ry - pady + ay)``; ``deformation = (ax, bx, ay, by)`` and a part
displaced by ``d = anchor - placement`` costs ``ax dx^2 + bx dx + ay dy^2 + by dy``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from viewfinder.dpm.features import FEATURE_DIM, flip_features
from viewfinder.dpm.model import BIAS_FEATURE, Component, Model, Part
from viewfinder.dpm.train.optimize import Regularizer
from viewfinder.errors import ModelError, ShapeError, check_shape
from viewfinder.fileio import atomic_path, check_readable

__all__ = ["DEF_INIT", "DEF_LOWER", "StarComponent", "StarPart", "TrainModel"]

#: Initial deformation weights (rel5 model_addparts: [0.1 0 0.1 0]).
DEF_INIT = np.array([0.1, 0.0, 0.1, 0.0])
#: Lower bounds of deformation weights (rel5 model_adddef: [0.01 -100 0.01 -100]).
DEF_LOWER = np.array([0.01, -100.0, 0.01, -100.0])
# Block multipliers (rel5): filters r1 lr1; deformations r10 lr0.1; bias r0 lr20.
_DEF_REG, _DEF_LR, _BIAS_LR = 10.0, 0.1, 20.0


@dataclass
class StarPart:
    """A part: filter at twice the root's resolution, anchor, deformation weights."""

    filter: np.ndarray
    anchor: tuple[int, int]
    deformation: np.ndarray = field(default_factory=lambda: DEF_INIT.copy())

    def __post_init__(self) -> None:
        self.filter = np.ascontiguousarray(self.filter, np.float32)
        check_shape(self.filter, (None, None, FEATURE_DIM), "StarPart.filter")
        self.deformation = np.asarray(self.deformation, np.float64).reshape(4)
        self.anchor = (int(self.anchor[0]), int(self.anchor[1]))


@dataclass
class StarComponent:
    """One star model: root filter, parts, bias weight (score adds ``bias * 10``)."""

    root: np.ndarray
    parts: list[StarPart] = field(default_factory=list)
    bias: float = 0.0
    bbox_regressor: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.root = np.ascontiguousarray(self.root, np.float32)
        check_shape(self.root, (None, None, FEATURE_DIM), "StarComponent.root")

    @property
    def size(self) -> tuple[int, int]:
        """Root ``(h, w)`` in cells."""
        return int(self.root.shape[0]), int(self.root.shape[1])

    @property
    def dim(self) -> int:
        """Length of this component's segment of the weight vector."""
        return self.root.size + sum(p.filter.size + 4 for p in self.parts) + 1

    def to_vector(self) -> np.ndarray:
        """The segment ``[root, (part filter, deformation)*, bias]`` as float64."""
        pieces = [self.root.ravel()]
        for p in self.parts:
            pieces += [p.filter.ravel(), p.deformation]
        pieces.append(np.array([self.bias]))
        return np.concatenate([np.asarray(x, np.float64) for x in pieces])

    def set_vector(self, v: np.ndarray) -> None:
        """Load weights from a segment laid out as :meth:`to_vector`."""
        check_shape(v, (self.dim,), "component weights")
        k = self.root.size
        self.root = v[:k].reshape(self.root.shape).astype(np.float32)
        for p in self.parts:
            n = p.filter.size
            p.filter = v[k:k + n].reshape(p.filter.shape).astype(np.float32)
            p.deformation = np.array(v[k + n:k + n + 4], np.float64)
            k += n + 4
        self.bias = float(v[k])

    def regularizer_blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-coordinate ``(reg_mult, learn_mult, lower)`` of this segment."""
        reg, lr, lo = [np.ones(self.root.size)], [np.ones(self.root.size)], [
            np.full(self.root.size, -np.inf)]
        for p in self.parts:
            n = p.filter.size
            reg += [np.ones(n), np.full(4, _DEF_REG)]
            lr += [np.ones(n), np.full(4, _DEF_LR)]
            lo += [np.full(n, -np.inf), DEF_LOWER]
        reg.append(np.zeros(1))
        lr.append(np.full(1, _BIAS_LR))
        lo.append(np.full(1, -np.inf))
        return np.concatenate(reg), np.concatenate(lr), np.concatenate(lo)

    def flipped(self) -> StarComponent:
        """The left-right mirror image (filters mirrored, anchors reflected, bx negated)."""
        w2 = 2 * self.size[1]
        parts = [StarPart(flip_features(p.filter),
                          (w2 - p.anchor[0] - p.filter.shape[1], p.anchor[1]),
                          p.deformation * np.array([1.0, -1.0, 1.0, 1.0])) for p in self.parts]
        return StarComponent(flip_features(self.root), parts, self.bias)


@dataclass
class TrainModel:
    """A mixture of :class:`StarComponent` s being trained, with its geometry."""

    name: str
    components: list[StarComponent]
    sbin: int = 8
    interval: int = 10
    thresh: float = -0.5
    version: int = field(default=0, repr=False, compare=False)

    @property
    def maxsize(self) -> tuple[int, int]:
        """Largest root ``(h, w)`` in cells (the pyramid padding)."""
        sizes = np.array([c.size for c in self.components])
        return int(sizes[:, 0].max()), int(sizes[:, 1].max())

    @property
    def padding(self) -> tuple[int, int]:
        """``(padx, pady)`` in cells."""
        h, w = self.maxsize
        return w, h

    def offsets(self) -> np.ndarray:
        """Start of each component's segment; the last entry is the total length."""
        return np.concatenate([[0], np.cumsum([c.dim for c in self.components])]).astype(np.int64)

    def to_vector(self) -> np.ndarray:
        """All weights, components back to back."""
        return np.concatenate([c.to_vector() for c in self.components])

    def set_vector(self, w: np.ndarray) -> None:
        """Load all weights from :meth:`to_vector`'s layout."""
        off = self.offsets()
        check_shape(w, (int(off[-1]),), "model weights")
        for c, comp in enumerate(self.components):
            comp.set_vector(np.asarray(w[off[c]:off[c + 1]], np.float64))
        self.version += 1  # invalidates filter banks built from the old weights

    def regularizer(self) -> Regularizer:
        """The solver's per-coordinate multipliers and bounds for this layout."""
        blocks = [c.regularizer_blocks() for c in self.components]
        return Regularizer(*(np.concatenate([b[i] for b in blocks]) for i in range(3)))

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to one ``.npz`` (atomically)."""
        arrays: dict[str, np.ndarray] = {}
        meta = {"name": self.name, "sbin": self.sbin, "interval": self.interval,
                "thresh": self.thresh, "components": []}
        for c, comp in enumerate(self.components):
            arrays[f"c{c}_root"] = comp.root
            if comp.bbox_regressor is not None:
                arrays[f"c{c}_bbox"] = comp.bbox_regressor
            for p, part in enumerate(comp.parts):
                arrays[f"c{c}_p{p}_filter"] = part.filter
                arrays[f"c{c}_p{p}_def"] = part.deformation
            meta["components"].append({"bias": comp.bias, "anchors": [
                list(p.anchor) for p in comp.parts]})
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainModel:
        """Read a model written by :meth:`save`.

        Raises:
            ModelError: the file is not a trained DPM (names the missing field).
        """
        p = check_readable(path, "trained model")
        try:
            with np.load(p) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                comps = [cls._component(z, c, m) for c, m in enumerate(meta["components"])]
        except (KeyError, ValueError, OSError) as exc:
            raise ModelError(f"{p}: not a trained DPM model ({exc})") from exc
        return cls(meta["name"], comps, int(meta["sbin"]), int(meta["interval"]),
                   float(meta["thresh"]))

    @staticmethod
    def _component(z, c: int, m: dict) -> StarComponent:
        parts = [StarPart(z[f"c{c}_p{p}_filter"], tuple(a), z[f"c{c}_p{p}_def"])
                 for p, a in enumerate(m["anchors"])]
        bbox = z[f"c{c}_bbox"] if f"c{c}_bbox" in z.files else None
        return StarComponent(z[f"c{c}_root"], parts, float(m["bias"]), bbox)

    # ------------------------------------------------------------------ export

    def to_model(self) -> Model:
        """The detection :class:`~viewfinder.dpm.model.Model` (mirrored components added)."""
        filters: list[np.ndarray] = []
        comps: list[Component] = []
        for c, comp in enumerate(self.components):
            for mirrored, star in ((False, comp), (True, comp.flipped())):
                root = len(filters)
                filters.append(star.root)
                parts = []
                for part in star.parts:
                    parts.append(Part(len(filters), part.anchor, part.deformation))
                    filters.append(part.filter)
                reg = comp.bbox_regressor
                if reg is not None:
                    reg = _export_regressor(reg, mirrored)
                comps.append(Component(root, tuple(parts), comp.bias * BIAS_FEATURE, star.size,
                                       bbox_regressor=reg, mirror_of=2 * c if mirrored else None))
        if not comps:
            raise ModelError(f"model {self.name}: has no components")
        return Model(self.name, tuple(filters), tuple(comps), self.thresh, self.sbin,
                     self.interval, self.maxsize)


def _export_regressor(reg: np.ndarray, mirrored: bool) -> np.ndarray:
    """A regressor of :mod:`~viewfinder.dpm.train.parts` in ``predict_boxes``'s convention.

    Training normalises centres to the root box's top-left (``u``); detection to its
    centre (``u - 1/2``), so the constant row absorbs half of every other row. The
    mirrored component sees reflected centres (``1/2 - u``) and swaps the x corners.
    """
    reg = np.asarray(reg, np.float64).copy()
    if reg.ndim != 2 or reg.shape[1] != 4 or reg.shape[0] % 2 != 1:
        raise ShapeError(f"bbox regressor: expected shape (2F + 1, 4), got {reg.shape}")
    if mirrored:
        reg[0:-1:2] *= -1.0  # x inputs reflected: u' = 1 - u
        reg[-1] -= reg[0:-1:2].sum(axis=0)
        reg = np.stack([-reg[:, 2], reg[:, 1], -reg[:, 0], reg[:, 3]], axis=1)
    reg[-1] += 0.5 * reg[:-1].sum(axis=0)
    return reg
