"""Loss scaler rules with injected inf/NaN gradients."""

from __future__ import annotations

import math

import pytest

from viewfinder.errors import ConfigError
from viewfinder.train.scaler import (
    DynamicLossScaler,
    NoLossScaler,
    StaticLossScaler,
    make_scaler,
)

torch = pytest.importorskip("torch")


def _setup(grad_values):
    """A parameter and an optimizer whose next gradient is ``grad_values`` (already scaled)."""
    p = torch.nn.Parameter(torch.zeros(len(grad_values)))
    opt = torch.optim.SGD([p], lr=1.0)
    return p, opt


def _step(scaler, p, opt, grad) -> bool:
    p.grad = torch.tensor(grad, dtype=torch.float32) * scaler.scale
    return scaler.step(opt)


GOOD, INF, NAN = [1.0, -2.0], [1.0, math.inf], [math.nan, 0.0]

# (grads per step, scaler, expected scales after each step, expected overflow count)
RULES = [
    ("dynamic backs off on inf", [INF], dict(init_scale=1024.0), [512.0], 1),
    ("dynamic backs off on nan", [NAN], dict(init_scale=1024.0), [512.0], 1),
    ("dynamic backs off twice", [INF, NAN], dict(init_scale=1024.0), [512.0, 256.0], 2),
    ("dynamic grows after interval", [GOOD] * 3, dict(init_scale=8.0, interval=3),
     [8.0, 8.0, 16.0], 0),
    ("overflow resets the growth counter", [GOOD, GOOD, INF, GOOD, GOOD, GOOD],
     dict(init_scale=8.0, interval=3), [8.0, 8.0, 4.0, 4.0, 4.0, 8.0], 1),
    ("custom factors", [INF, GOOD, GOOD], dict(init_scale=100.0, backoff=0.25, growth=3.0,
                                               interval=2), [25.0, 25.0, 75.0], 1),
    ("floor at min_scale", [INF, INF], dict(init_scale=1.0), [1.0, 1.0], 2),
]


@pytest.mark.parametrize(("name", "grads", "kwargs", "scales", "overflows"), RULES,
                         ids=[r[0] for r in RULES])
def test_dynamic_rules(name, grads, kwargs, scales, overflows) -> None:
    scaler = DynamicLossScaler(**kwargs)
    p, opt = _setup(GOOD)
    seen = []
    for g in grads:
        _step(scaler, p, opt, g)
        seen.append(scaler.scale)
    assert seen == scales
    assert scaler.state.overflows == overflows and scaler.state.steps == len(grads)


@pytest.mark.parametrize("grads", [[INF], [NAN, GOOD, INF], [GOOD] * 5])
def test_static_scale_never_changes(grads) -> None:
    scaler = StaticLossScaler(1024.0)
    p, opt = _setup(GOOD)
    for g in grads:
        _step(scaler, p, opt, g)
        assert scaler.scale == 1024.0
    assert scaler.state.overflows == sum(g is not GOOD for g in grads)


@pytest.mark.parametrize("scaler_factory", [lambda: StaticLossScaler(1024.0),
                                            lambda: DynamicLossScaler(1024.0), NoLossScaler])
def test_overflow_skips_the_step_and_good_step_unscales(scaler_factory) -> None:
    scaler = scaler_factory()
    p, opt = _setup(GOOD)
    assert _step(scaler, p, opt, INF) is False
    assert torch.equal(p.detach(), torch.zeros(2))  # skipped: parameters untouched
    assert _step(scaler, p, opt, GOOD) is True
    # SGD lr 1 with the unscaled gradient [1, -2]
    torch.testing.assert_close(p.detach(), torch.tensor([-1.0, 2.0]))


def test_flag_hook_for_devices_that_report_overflow() -> None:
    """An NPU-style check: finite gradients, but the device flag says overflow."""
    flags = iter([False, True, False])
    calls = []

    def device_flag(grads):
        calls.append(len(grads))
        return next(flags)

    scaler = DynamicLossScaler(64.0, interval=100, overflow_check=device_flag)
    p, opt = _setup(GOOD)
    results = [_step(scaler, p, opt, GOOD) for _ in range(3)]
    assert results == [True, False, True]
    assert scaler.scale == 32.0 and scaler.state.overflows == 1 and calls == [1, 1, 1]


def test_state_dict_round_trip() -> None:
    a = DynamicLossScaler(64.0, interval=3)
    p, opt = _setup(GOOD)
    for g in (GOOD, INF, GOOD):
        _step(a, p, opt, g)
    b = DynamicLossScaler(1.0, interval=3)
    b.load_state_dict(a.state_dict())
    assert vars(b.state) == vars(a.state) == {"scale": 32.0, "good_steps": 1, "overflows": 1,
                                              "steps": 3}


@pytest.mark.parametrize(("spec", "cls", "scale"), [
    (None, NoLossScaler, 1.0), ("none", NoLossScaler, 1.0),
    ("static:1024", StaticLossScaler, 1024.0), ("dynamic", DynamicLossScaler, 65536.0),
])
def test_make_scaler(spec, cls, scale) -> None:
    s = make_scaler(spec)
    assert type(s) is cls and s.scale == scale


@pytest.mark.parametrize(("spec", "kwargs", "message"), [
    ("static:abc", {}, "expected static:<number>"),
    ("static:0", {}, "expected a finite positive number"),
    ("static:inf", {}, "expected a finite positive number"),
    ("auto", {}, "expected none, static:<number> or dynamic"),
    ("dynamic", {"growth": 1.0}, "growth factor 1.0: expected > 1"),
    ("dynamic", {"backoff": 1.5}, r"backoff factor 1.5: expected in \(0, 1\)"),
    ("dynamic", {"interval": 0}, "growth interval 0"),
])
def test_bad_settings(spec, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make_scaler(spec, **kwargs)
