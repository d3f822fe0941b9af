"""The bounded feature cache of latent positives and hard negatives (rel5 ``fv_cache``).

Positives are examples with one entry per component (the best placement of each
component that overlaps the box enough): the solver takes the max, so the
component is latent too. Negatives are single-entry examples keyed by their root
window (image, component, orientation, level, cell); mining a window again replaces
its features, so its part placement follows the model. The cache is bounded by an example
count and a byte budget; when full, mining stops, the solver runs, and easy
negatives (score below the margin) are dropped before mining goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

import numpy as np

from viewfinder.dpm.train.optimize import Problem, example_scores

__all__ = ["FeatureCache"]

logger = logging.getLogger(__name__)


class FeatureCache:
    """Latent positives and hard negatives, packed on demand into a :class:`Problem`.

    Args:
        offsets: Start of each component's segment in the weight vector (last = dim).
        max_examples: Most negatives kept.
        max_bytes: Most bytes of negative features kept.
    """

    def __init__(self, offsets: np.ndarray, max_examples: int, max_bytes: int) -> None:
        self.offsets = np.asarray(offsets, np.int64)
        self.max_examples = int(max_examples)
        self.max_bytes = int(max_bytes)
        self._pos: list[list[tuple[int, np.ndarray]]] = []
        self._neg: dict[Hashable, tuple[int, np.ndarray]] = {}
        self._neg_bytes = 0

    @property
    def dim(self) -> int:
        """Length of the weight vector."""
        return int(self.offsets[-1])

    @property
    def num_pos(self) -> int:
        """Number of positive examples."""
        return len(self._pos)

    @property
    def num_neg(self) -> int:
        """Number of negative examples."""
        return len(self._neg)

    @property
    def nbytes(self) -> int:
        """Bytes of negative features held."""
        return self._neg_bytes

    @property
    def full(self) -> bool:
        """Whether no more negatives fit."""
        return self.num_neg >= self.max_examples or self._neg_bytes >= self.max_bytes

    def set_positives(self, positives: list[list[tuple[int, np.ndarray]]]) -> None:
        """Replace the positives: one list of ``(component, features)`` entries each."""
        self._pos = [list(p) for p in positives if p]

    def add_negative(self, key: Hashable, component: int, features: np.ndarray) -> bool:
        """Add one negative; True if it is new.

        A key already held (the same root window) gets the new features: its latent part
        placement is re-inferred with the current model, as each mining round must (a
        stale placement would hide how high the window scores now). A new key is refused
        when the cache is full.
        """
        f = np.ascontiguousarray(features, np.float32)
        if key in self._neg:
            self._neg_bytes += f.nbytes - self._neg[key][1].nbytes
            self._neg[key] = (int(component), f)
            return False
        if self.full:
            return False
        self._neg[key] = (int(component), f)
        self._neg_bytes += f.nbytes
        return True

    def problem(self) -> Problem:
        """The cache as a packed solver problem (positives first)."""
        entries: list[tuple[int, np.ndarray]] = []
        ex_sizes: list[int] = []
        for p in self._pos:
            entries += p
            ex_sizes.append(len(p))
        for c, f in self._neg.values():
            entries.append((c, f))
            ex_sizes.append(1)
        lengths = np.array([f.shape[0] for _, f in entries], np.int64)
        data = (np.concatenate([f for _, f in entries]) if entries
                else np.zeros(0, np.float32))
        ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        start = np.array([self.offsets[c] for c, _ in entries], np.int64)
        ex_ptr = np.concatenate([[0], np.cumsum(ex_sizes)]).astype(np.int64)
        labels = np.concatenate([np.ones(self.num_pos), -np.ones(self.num_neg)]).astype(np.int8)
        return Problem(data, ptr, start, ex_ptr, labels, self.dim)

    def shrink(self, w: np.ndarray, margin: float = -1.0) -> int:
        """Drop negatives scoring below ``margin`` (easy ones); return how many went."""
        if not self._neg:
            return 0
        prob = self.problem()
        scores = example_scores(prob, w)[self.num_pos:]
        keys = list(self._neg)
        dropped = 0
        for key, s in zip(keys, scores, strict=True):
            if s < margin:
                self._neg_bytes -= self._neg[key][1].nbytes
                del self._neg[key]
                dropped += 1
        logger.debug("cache: dropped %d easy negatives, %d kept", dropped, self.num_neg)
        return dropped
