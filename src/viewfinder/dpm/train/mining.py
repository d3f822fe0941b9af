"""Training's per-image work, as units any engine can run: mining and relabelling.

Each latent round searches every positive image (the best placement of each box:
latent relabelling) and every negative image (windows scoring above the margin:
hard-negative mining). Both are one function of ``(model, image)``:
:func:`search_image`, run by a :class:`~viewfinder.scale.mapper.Mapper` in this
process, on a process pool or on Ray actors. Each worker keeps its own
:class:`~viewfinder.dpm.train.search.PyramidCache` (built once by
:class:`SearchSetup`) and the last model it was sent (by :attr:`ImageUnit.token`, so
the filters' transforms are computed once per model, not per image). The trainer
consumes the results in image order, so a run on N workers adds the same negatives to
the same cache in the same order as the serial run, and trains the same model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from viewfinder.datasets.voc import VOCDataset
from viewfinder.dpm.train.latent import Placement
from viewfinder.dpm.train.model import TrainModel
from viewfinder.dpm.train.search import (
    PyramidCache,
    best_placements,
    entries_of,
    hard_negatives,
    part_boxes,
)

__all__ = ["BoxResult", "ImageUnit", "NegativeWindow", "SearchSetup", "SearchState",
           "model_token", "search_image", "window_limit"]

#: One mined window: cache key ``(image, component, flip, level, rx, ry)``, component,
#: features.
NegativeWindow = tuple[tuple[Any, ...], int, np.ndarray]


@dataclass(frozen=True)
class BoxResult:
    """What the search found for one positive box.

    Attributes:
        placements: The best placement per component overlapping the box enough.
        entries: ``(component, features)`` of each placement (latent relabelling).
        best: The best-scoring placement (None when there is none).
        best_parts: ``(P, 4)`` part boxes of ``best`` (box regression).
    """

    placements: list[Placement]
    entries: list[tuple[int, np.ndarray]] | None
    best: Placement | None
    best_parts: np.ndarray | None


@dataclass(frozen=True)
class ImageUnit:
    """One image to search with one model.

    Attributes:
        kind: ``"negatives"`` (windows above ``threshold``, at most ``limit``) or
            ``"positives"`` (per box, placements overlapping >= ``threshold``).
        token: Identifies ``model``'s weights (:func:`model_token`).
        model: The current model.
        image_id: The image.
        boxes: ``(B, 4)`` xyxy boxes (positives).
        threshold: Score margin (negatives) or minimum overlap (positives).
        limit: Windows per image at most (negatives; 0: no cap).
        mirror: Score both orientations of every component.
        features: Return each placement's features (relabelling), not only placements.
    """

    kind: str
    token: str
    model: TrainModel
    image_id: str
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    threshold: float = 0.0
    limit: int = 0
    mirror: bool = True
    features: bool = True

    def __repr__(self) -> str:
        return f"ImageUnit({self.kind}, {self.image_id})"


def model_token(model: TrainModel) -> str:
    """A digest of the model's weights and geometry (equal models, equal tokens)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(model.to_vector()).tobytes())
    h.update(repr([(c.size, len(c.parts)) for c in model.components]).encode())
    return h.hexdigest()


def window_limit(model: TrainModel, cache_examples: int, cache_bytes: int, images: int,
                 per_image: int = 0) -> int:
    """Windows one negative image may give a mining round, the hardest first.

    ``per_image`` if set, else the image's share of the cache: its capacity (in windows,
    and in bytes of the smallest component's features) over the ``images`` mined
    (voc-release5's ``det_limit`` spreads the room left over a batch of images).
    Uncapped, an early model that scores every window above the margin fills the whole
    cache from the first image, and no later image is ever seen. Never more than the
    cache holds.
    """
    smallest = min(c.dim for c in model.components) * 4
    capacity = max(1, min(cache_examples, cache_bytes // smallest))
    return min(per_image or max(1, capacity // max(1, images)), capacity)


@dataclass(frozen=True)
class SearchSetup:
    """Builds a worker's :class:`SearchState` (picklable: paths and numbers only)."""

    voc_root: str
    split: str
    sbin: int
    interval: int
    cache_bytes: int

    def __call__(self) -> SearchState:
        """The state, built in the worker."""
        return SearchState(VOCDataset(self.voc_root, self.split), self.sbin, self.interval,
                           self.cache_bytes)


class SearchState:
    """A worker's dataset reader, pyramid cache and last model."""

    def __init__(self, voc: VOCDataset, sbin: int, interval: int, cache_bytes: int) -> None:
        self.voc, self.sbin, self.interval, self.cache_bytes = voc, sbin, interval, cache_bytes
        self.pyramids: PyramidCache | None = None
        self._model: tuple[str, TrainModel] | None = None

    def model(self, unit: ImageUnit) -> TrainModel:
        """The unit's model; the object already held when the token matches."""
        if self._model is None or self._model[0] != unit.token:
            self._model = (unit.token, unit.model)
        return self._model[1]

    def pyramid(self, model: TrainModel, image_id: str) -> Any:
        """The image's feature pyramid for the model's padding (cached)."""
        pad = model.padding
        if self.pyramids is None or self.pyramids.pad != pad:
            self.pyramids = PyramidCache(self.voc, self.sbin, self.interval, pad,
                                         self.cache_bytes)
        return self.pyramids.get(image_id)


def _box_result(model: TrainModel, pyr: Any, pls: list[Placement], features: bool
                ) -> BoxResult:
    if not pls:
        return BoxResult([], [] if features else None, None, None)
    best = max(pls, key=lambda q: q.score)
    return BoxResult(pls, entries_of(model, pyr, pls) if features else None, best,
                     part_boxes(model, pyr, best))


def search_image(state: SearchState, unit: ImageUnit) -> list[NegativeWindow] | list[BoxResult]:
    """Mine one negative image, or find the placements of one positive image's boxes.

    Returns:
        ``"negatives"``: the windows above the margin, best first.
        ``"positives"``: one :class:`BoxResult` per box, in box order.
    """
    model = state.model(unit)
    pyr = state.pyramid(model, unit.image_id)
    if unit.kind == "negatives":
        found = hard_negatives(model, pyr, unit.threshold, unit.limit, unit.mirror)
        return [((unit.image_id, pl.component, pl.flip, pl.level, pl.rx, pl.ry), pl.component,
                 entries_of(model, pyr, [pl])[0][1]) for pl in found]
    per_box = best_placements(model, pyr, np.array(unit.boxes).reshape(-1, 4),
                              unit.threshold, unit.mirror)
    return [_box_result(model, pyr, pls, unit.features) for pls in per_box]
