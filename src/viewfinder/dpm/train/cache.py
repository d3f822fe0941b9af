"""The bounded feature cache of latent positives and hard negatives (rel5 ``fv_cache``).

Positives are examples with one entry per component (the best placement of each
component that overlaps the box enough): the solver takes the max, so the
component is latent too. Negatives are single-entry examples keyed by their root
window (image, component, orientation, level, cell); mining a window again replaces
its features, so its part placement follows the model. The cache is bounded by an example
count and a byte budget; when full, mining stops, the solver runs, and easy
negatives (score below the margin) are dropped before mining goes on.

The cache also keeps each example's dual variable from the last solve (a warm start
for the next one: new examples start at 0) and a ``version`` that changes whenever
its content does, so that an unchanged cache is not solved again.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

import numpy as np

from viewfinder.dpm.train.optimize import Problem, example_scores
from viewfinder.errors import ShapeError

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
        self._pos_keys: list[Hashable] = []
        self._neg: dict[Hashable, tuple[int, np.ndarray]] = {}
        self._neg_bytes = 0
        self._alpha: dict[Hashable, float] = {}  # ("pos", key) / ("neg", key) -> dual
        #: Changes whenever the examples or their features change.
        self.version = 0

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

    def set_positives(self, positives: list[list[tuple[int, np.ndarray]]],
                      keys: list[Hashable] | None = None) -> None:
        """Replace the positives: one list of ``(component, features)`` entries each.

        ``keys`` (one per positive, e.g. image and box) let a positive keep its dual
        variable from the last solve; without them positives start from 0.
        """
        keys = list(range(len(positives))) if keys is None else list(keys)
        if len(keys) != len(positives):
            raise ShapeError(f"set_positives: expected {len(positives)} keys, got {len(keys)}")
        kept = [(k, list(p)) for k, p in zip(keys, positives, strict=True) if p]
        new_keys, new_pos = [k for k, _ in kept], [p for _, p in kept]
        if new_keys != self._pos_keys or not all(
                _same_entries(a, b) for a, b in zip(new_pos, self._pos, strict=True)):
            self.version += 1
        for k in set(self._pos_keys) - set(new_keys):
            self._alpha.pop(("pos", k), None)
        self._pos, self._pos_keys = new_pos, new_keys

    def add_negative(self, key: Hashable, component: int, features: np.ndarray) -> bool:
        """Add one negative; True if it is new.

        A key already held (the same root window) gets the new features: its latent part
        placement is re-inferred with the current model, as each mining round must (a
        stale placement would hide how high the window scores now). A new key is refused
        when the cache is full.
        """
        f = np.ascontiguousarray(features, np.float32)
        if key in self._neg:
            old_c, old_f = self._neg[key]
            if old_c != component or not np.array_equal(old_f, f):
                self.version += 1
            self._neg_bytes += f.nbytes - old_f.nbytes
            self._neg[key] = (int(component), f)
            return False
        if self.full:
            return False
        self._neg[key] = (int(component), f)
        self._neg_bytes += f.nbytes
        self.version += 1
        return True

    def alpha(self) -> np.ndarray:
        """The dual variables in :meth:`problem`'s order (0 for examples never solved)."""
        keys = [("pos", k) for k in self._pos_keys] + [("neg", k) for k in self._neg]
        return np.array([self._alpha.get(k, 0.0) for k in keys], np.float64)

    def set_alpha(self, alpha: np.ndarray) -> None:
        """Keep a solve's dual variables (in :meth:`problem`'s order) for the next one."""
        keys = [("pos", k) for k in self._pos_keys] + [("neg", k) for k in self._neg]
        alpha = np.asarray(alpha, np.float64)
        if alpha.shape != (len(keys),):
            raise ShapeError(f"set_alpha: expected ({len(keys)},), got {alpha.shape}")
        self._alpha = {k: float(a) for k, a in zip(keys, alpha, strict=True) if a != 0.0}

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
                self._alpha.pop(("neg", key), None)
                dropped += 1
        if dropped:
            self.version += 1
        logger.debug("cache: dropped %d easy negatives, %d kept", dropped, self.num_neg)
        return dropped


def _same_entries(a: list[tuple[int, np.ndarray]], b: list[tuple[int, np.ndarray]]) -> bool:
    return len(a) == len(b) and all(ca == cb and np.array_equal(fa, fb)
                                    for (ca, fa), (cb, fb) in zip(a, b, strict=True))
