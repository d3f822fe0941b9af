"""Loss scaling for mixed precision, on every device (CPU, CUDA, NPU...).

A scaler multiplies the loss before ``backward`` so small fp16 gradients do not
flush to zero, then unscales the gradients, checks them for overflow and either
steps the optimizer or skips the step. Unlike ``torch.amp.GradScaler`` it needs no
device-specific kernels: the overflow check is a pluggable
:class:`OverflowCheck`, by default :func:`gradients_overflow` (any inf or NaN in
the gradients, one host sync per step); devices that report overflow as a flag
instead (Ascend's ``torch_npu``) plug in :func:`npu_overflow_check`.

Rules (as in ``GradScaler`` / Megatron / Apex):

* overflow: the step is skipped and counted; a dynamic scale is multiplied by
  ``backoff`` (never below ``min_scale``) and its growth counter is reset;
* ``interval`` consecutive good steps: a dynamic scale is multiplied by ``growth``;
* a static scale never changes (overflowed steps are still skipped and counted).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from viewfinder.errors import ConfigError, MissingDependencyError

__all__ = [
    "DynamicLossScaler", "LossScaler", "NoLossScaler", "OverflowCheck", "StaticLossScaler",
    "gradients_overflow", "make_scaler", "npu_overflow_check",
]

log = logging.getLogger(__name__)

OverflowCheck = Callable[[list[Any]], bool]
"""Called with the list of gradient tensors after unscaling; True means overflow."""


def gradients_overflow(grads: list[Any]) -> bool:
    """True when any gradient holds an inf or NaN (one device-to-host sync)."""
    import torch

    if not grads:
        return False
    flags = torch.stack([torch.logical_not(torch.isfinite(g).all()) for g in grads])
    return bool(flags.any().item())


def npu_overflow_check() -> OverflowCheck:
    """An overflow check reading Ascend's hardware overflow flag through ``torch_npu``.

    On NPUs saturation may turn overflow into large finite values, so the device's
    status register, not the gradient values, says whether the step overflowed.
    """
    try:
        import torch_npu  # noqa: F401
        from torch_npu.npu import utils as npu_utils
    except ImportError:
        raise MissingDependencyError("torch_npu", "train", "NPU overflow detection") from None

    def check(grads: list[Any]) -> bool:
        found = bool(npu_utils.npu_check_overflow(grads)) if grads else False
        npu_utils.clear_npu_overflow_flag()
        return found or gradients_overflow(grads)

    return check


@dataclass
class ScalerState:
    """What a checkpoint stores: scale, growth counter, counts."""

    scale: float
    good_steps: int = 0
    overflows: int = 0
    steps: int = 0


class LossScaler:
    """Base class: scale the loss, unscale and check the gradients, step or skip.

    Args:
        scale: Initial loss scale.
        overflow_check: How overflow is detected (default: inf/NaN in the gradients).
    """

    dynamic = False

    def __init__(self, scale: float, overflow_check: OverflowCheck | None = None) -> None:
        if not (math.isfinite(scale) and scale > 0):
            raise ConfigError(f"loss scale {scale}: expected a finite positive number")
        self.state = ScalerState(float(scale))
        self.overflow_check = overflow_check or gradients_overflow
        self.last_overflow = False

    @property
    def scale(self) -> float:
        """The current loss scale."""
        return self.state.scale

    def scale_loss(self, loss: Any) -> Any:
        """``loss * scale`` (computed in fp32)."""
        return loss.float() * self.state.scale

    def step(self, optimizer: Any) -> bool:
        """Unscale the gradients, check them, then step (or skip) and update the scale.

        Returns:
            True when the optimizer stepped, False when the step was skipped.
        """
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        self._unscale(grads)
        overflow = self.overflow_check(grads)
        self.state.steps += 1
        self.last_overflow = overflow
        if overflow:
            self.state.overflows += 1
            log.warning("step %d: gradient overflow at loss scale %g: step skipped",
                        self.state.steps, self.state.scale)
        else:
            optimizer.step()
        self._update(overflow)
        return not overflow

    def _unscale(self, grads: Iterable[Any]) -> None:
        import torch

        grads = list(grads)
        if grads and self.state.scale != 1.0:
            torch._foreach_mul_(grads, 1.0 / self.state.scale)

    def _update(self, overflow: bool) -> None:
        """Scale update rule (static: nothing)."""

    def state_dict(self) -> dict[str, float | int]:
        """For checkpoints."""
        return dict(vars(self.state))

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        """Restore from :meth:`state_dict`."""
        self.state = ScalerState(float(state["scale"]), int(state["good_steps"]),
                                 int(state["overflows"]), int(state["steps"]))

    def describe(self) -> str:
        """One line for logs."""
        return f"{type(self).__name__}(scale={self.state.scale:g})"


class NoLossScaler(LossScaler):
    """Scale 1: plain fp32/bf16 training, but still skips non-finite steps."""

    def __init__(self, overflow_check: OverflowCheck | None = None) -> None:
        super().__init__(1.0, overflow_check)


class StaticLossScaler(LossScaler):
    """A fixed loss scale (e.g. 1024); overflowed steps are skipped, the scale stays."""


class DynamicLossScaler(LossScaler):
    """A loss scale that backs off on overflow and grows after ``interval`` good steps.

    Args:
        init_scale: Starting scale (65536).
        growth: Factor after ``interval`` consecutive good steps (2).
        backoff: Factor on overflow (0.5).
        interval: Good steps between growths (2000).
        min_scale: Floor for the scale.
        max_scale: Ceiling for the scale.
        overflow_check: See :class:`LossScaler`.
    """

    dynamic = True

    def __init__(self, init_scale: float = 65536.0, growth: float = 2.0, backoff: float = 0.5,
                 interval: int = 2000, min_scale: float = 1.0, max_scale: float = 2.0 ** 24,
                 overflow_check: OverflowCheck | None = None) -> None:
        super().__init__(init_scale, overflow_check)
        if not growth > 1.0:
            raise ConfigError(f"growth factor {growth}: expected > 1")
        if not 0.0 < backoff < 1.0:
            raise ConfigError(f"backoff factor {backoff}: expected in (0, 1)")
        if interval < 1:
            raise ConfigError(f"growth interval {interval}: expected >= 1")
        self.growth, self.backoff, self.interval = growth, backoff, interval
        self.min_scale, self.max_scale = min_scale, max_scale

    def _update(self, overflow: bool) -> None:
        if overflow:
            self.state.scale = max(self.min_scale, self.state.scale * self.backoff)
            self.state.good_steps = 0
            return
        self.state.good_steps += 1
        if self.state.good_steps >= self.interval:
            self.state.scale = min(self.max_scale, self.state.scale * self.growth)
            self.state.good_steps = 0

    def describe(self) -> str:
        return (f"DynamicLossScaler(scale={self.state.scale:g}, growth={self.growth:g}, "
                f"backoff={self.backoff:g}, interval={self.interval})")


def make_scaler(spec: str | None, *, init_scale: float = 65536.0, growth: float = 2.0,
                backoff: float = 0.5, interval: int = 2000,
                overflow_check: OverflowCheck | None = None) -> LossScaler:
    """Build a scaler from a CLI-style spec.

    Args:
        spec: ``None``/``"none"`` (scale 1), ``"static:1024"``, or ``"dynamic"``.
        init_scale, growth, backoff, interval: Dynamic scaler settings.
        overflow_check: See :class:`LossScaler`.

    Raises:
        ConfigError: an unknown spec or a bad value.
    """
    if spec is None or spec == "none":
        return NoLossScaler(overflow_check)
    if spec == "dynamic":
        return DynamicLossScaler(init_scale, growth, backoff, interval,
                                 overflow_check=overflow_check)
    if spec.startswith("static:"):
        try:
            value = float(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"loss scale {spec!r}: expected static:<number>") from None
        return StaticLossScaler(value, overflow_check)
    raise ConfigError(f"loss scale {spec!r}: expected none, static:<number> or dynamic")
