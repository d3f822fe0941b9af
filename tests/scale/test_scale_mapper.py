"""``open_mapper``: results in input order on every engine, workers that outlive a call,
a killed worker retried, errors of the work raised as they are."""

from __future__ import annotations

import pytest
from scale_helpers import CountingSetup, boom, kill_on, setup_pid

from viewfinder.errors import ConfigError, WorkerError
from viewfinder.scale.mapper import open_mapper


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_pool_results_in_input_order_and_workers_kept_between_calls(workers) -> None:
    units = list(range(9))
    with open_mapper(setup_pid, CountingSetup(), workers=workers) as mapper:
        first = list(mapper.map(units))
        second = list(mapper.map(units))
    assert [u for u, _, _ in first] == units == [u for u, _, _ in second]
    # each result came from a process whose setup ran in that same process, once
    assert all(setup == pid for _, setup, pid in first + second)
    pids_first = {pid for _, _, pid in first}
    assert {pid for _, _, pid in second} <= pids_first  # the same workers, not new ones
    assert len(pids_first) <= max(1, workers)
    assert mapper.engine == ("pool" if workers > 1 else "serial")


def test_pool_killed_worker_retried_once_then_lost(tmp_path) -> None:
    marker = str(tmp_path / "once")
    with open_mapper(kill_on, workers=2) as mapper:
        units = [("a", marker), ("die", marker), ("b", marker)]
        assert list(mapper.map(units)) == ["aa", "diedie", "bb"]
        with pytest.raises(WorkerError, match="unit 0 .*died on every try"):
            list(mapper.map([("always", marker)]))
        assert list(mapper.map([("c", marker)])) == ["cc"]  # the mapper still works


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_of_the_work_is_raised_as_is(workers) -> None:
    with open_mapper(boom, workers=workers) as mapper, pytest.raises(ValueError,
                                                                      match="bad unit"):
        list(mapper.map(["ok", "bad", "ok"]))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"engine": "spark"}, "engine 'spark': expected pool or ray"),
    ({"workers": -1}, "workers -1: expected 0 or more"),
    ({"address": "auto"}, "address: only with engine ray"),
])
def test_bad_arguments(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        open_mapper(boom, **kwargs)


@pytest.mark.slow
@pytest.mark.xdist_group("scale-ray")
def test_ray_mapper_order_killed_actor_and_errors(local_ray, tmp_path) -> None:
    pytest.importorskip("ray.data", reason="ray is not installed")
    marker = str(tmp_path / "once")
    with open_mapper(setup_pid, CountingSetup(), workers=2, engine="ray") as mapper:
        out = list(mapper.map(list(range(7))))
        assert [u for u, _, _ in out] == list(range(7))
        assert all(setup == pid for _, setup, pid in out)
        threads = mapper.threads_seen()
        assert len(threads) == 2 and all(t["cv2"] == 1 for t in threads)
    with open_mapper(kill_on, workers=2, engine="ray") as mapper:
        units = [("a", marker), ("die", marker), ("b", marker)]
        assert list(mapper.map(units)) == ["aa", "diedie", "bb"]
    with open_mapper(boom, workers=2, engine="ray") as mapper, pytest.raises(ValueError,
                                                                              match="bad"):
        list(mapper.map(["ok", "bad"]))
