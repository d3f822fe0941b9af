"""The bounded feature cache: dedup, limits, packing, shrinking easy negatives."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.dpm.train.cache import FeatureCache
from viewfinder.dpm.train.optimize import example_scores


def _cache(max_examples: int = 10, max_bytes: int = 10_000) -> FeatureCache:
    return FeatureCache(np.array([0, 3, 5]), max_examples, max_bytes)


def test_packing_puts_positives_first_with_their_entries():
    c = _cache()
    c.set_positives([[(0, np.ones(3)), (1, np.full(2, 2.0))], [(1, np.ones(2))], []])
    assert c.add_negative(("img", 1), 0, np.array([1.0, 0, 0]))
    prob = c.problem()
    assert (c.num_pos, c.num_neg) == (2, 1)
    np.testing.assert_array_equal(prob.labels, [1, 1, -1])
    np.testing.assert_array_equal(prob.ex_ptr, [0, 2, 3, 4])
    np.testing.assert_array_equal(prob.start, [0, 3, 3, 0])
    w = np.array([1.0, 1, 1, 1, 1])
    np.testing.assert_allclose(example_scores(prob, w), [4.0, 2.0, 1.0])


@pytest.mark.parametrize(("max_examples", "max_bytes", "accepted"), [
    (2, 10_000, 2),  # example limit
    (10, 24, 2),  # byte limit: 12 bytes per 3-float negative
    (10, 10_000, 4),
])
def test_cache_is_bounded(max_examples, max_bytes, accepted):
    c = _cache(max_examples, max_bytes)
    results = [c.add_negative(k, 0, np.ones(3)) for k in range(4)]
    assert sum(results) == accepted
    assert c.full == (accepted < 4)


def test_a_re_mined_window_is_not_new_but_takes_the_new_placement():
    c = _cache(max_examples=1)
    assert c.add_negative(("a", 0, 1), 0, np.ones(3))
    assert c.full
    assert not c.add_negative(("a", 0, 1), 0, np.full(3, 7.0))  # same window, even when full
    assert c.num_neg == 1
    np.testing.assert_array_equal(c.problem().data, np.full(3, 7.0))  # stale features replaced


def test_shrink_drops_easy_negatives_and_frees_bytes():
    c = _cache()
    c.set_positives([[(0, np.ones(3))]])
    c.add_negative("hard", 0, np.array([1.0, 0, 0]))
    c.add_negative("easy", 0, np.array([-5.0, 0, 0]))
    before = c.nbytes
    assert c.shrink(np.array([1.0, 0, 0, 0, 0]), -1.0) == 1
    assert c.num_neg == 1 and c.nbytes == before // 2
    assert c.shrink(np.zeros(5)) == 0
