"""Mixed-precision policy: which ``torch.autocast`` (if any) wraps the forward pass.

The policy is injected into the trainer, so the loop itself never mentions a
device or a dtype. ``fp16`` needs a loss scaler (see :mod:`viewfinder.train.scaler`);
``bf16`` has fp32's range and usually runs without one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from viewfinder.errors import ConfigError, MissingDependencyError, ProviderError

__all__ = ["AmpPolicy", "resolve_device"]

_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "train", "training") from None
    return torch


def resolve_device(name: str) -> Any:
    """A ``torch.device`` for ``cpu``, ``cuda[:i]`` or ``npu[:i]``, checked to exist.

    Raises:
        ProviderError: the device is not available here.
    """
    torch = _torch()
    kind = name.split(":", 1)[0]
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ProviderError(f"device {name!r}: CUDA is not available on this machine")
        return torch.device(name)
    if kind == "npu":
        try:
            import torch_npu  # noqa: F401
        except ImportError:
            raise MissingDependencyError("torch_npu", "train", f"device {name!r}") from None
        if not torch.npu.is_available():  # pragma: no cover - needs an Ascend NPU
            raise ProviderError(f"device {name!r}: no NPU available")
        return torch.device(name)
    raise ConfigError(f"device {name!r}: expected cpu, cuda[:i] or npu[:i]")


@dataclass(frozen=True)
class AmpPolicy:
    """``torch.autocast`` settings for the forward pass.

    Attributes:
        precision: ``"f32"`` (no autocast; ``"fp32"`` is accepted), ``"fp16"`` or ``"bf16"``.
        device_type: ``"cpu"``, ``"cuda"``, ``"npu"``...
    """

    precision: str = "f32"
    device_type: str = "cpu"

    def __post_init__(self) -> None:
        if self.precision == "fp32":  # the other spelling of the one vocabulary's f32
            object.__setattr__(self, "precision", "f32")
        if self.precision not in ("f32", *_DTYPES):
            raise ConfigError(f"amp {self.precision!r}: expected f32, fp16 or bf16")

    @property
    def enabled(self) -> bool:
        """True when the forward pass runs under autocast."""
        return self.precision != "f32"

    @property
    def needs_scaling(self) -> bool:
        """fp16's narrow range needs a loss scale; bf16 and f32 do not."""
        return self.precision == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context manager to run the forward pass (and loss) in."""
        if not self.enabled:
            return contextlib.nullcontext()
        torch = _torch()
        return torch.autocast(self.device_type, dtype=getattr(torch, _DTYPES[self.precision]))
