"""A small, generic training loop (detectron2's ``SimpleTrainer``/``AMPTrainer`` shape).

The model's forward takes a batch and returns a dict of scalar losses; the trainer
sums them, runs the forward under the injected :class:`AmpPolicy`, scales the
loss with the injected :class:`LossScaler`, steps or skips, and records one metrics
dict per step. Everything else (logging, checkpoints, evaluation, LR schedules)
is a hook. ::

    trainer = Trainer(model, optimizer, loader, max_iter=1000,
                      amp=AmpPolicy("fp16", "cuda"), scaler=make_scaler("static:1024"))
    trainer.register_hooks([LoggingHook(), CheckpointHook("out", 500)])
    trainer.train()
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from viewfinder.errors import ConfigError, ModelError
from viewfinder.fileio import atomic_path, check_readable
from viewfinder.train.amp import AmpPolicy
from viewfinder.train.hooks import HookBase
from viewfinder.train.scaler import LossScaler, NoLossScaler

__all__ = ["Trainer", "to_device"]

log = logging.getLogger(__name__)


def to_device(obj: Any, device: Any) -> Any:
    """Move tensors inside (nested) tuples, lists and dicts to ``device``."""
    if hasattr(obj, "to") and hasattr(obj, "device"):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


class Trainer:
    """Runs ``max_iter`` optimisation steps over an endlessly repeated data iterable.

    Args:
        model: A ``torch.nn.Module`` whose ``forward(batch)`` returns ``{name: loss}``.
        optimizer: A ``torch.optim`` optimizer over the model's parameters.
        data: An iterable of batches (re-iterated each epoch).
        max_iter: Number of steps.
        amp: Autocast policy (default: fp32).
        scaler: Loss scaler (default: none, scale 1; non-finite steps still skipped).
        device: Where batches go (the model must already be there).
    """

    def __init__(self, model: Any, optimizer: Any, data: Iterable[Any], *, max_iter: int,
                 amp: AmpPolicy | None = None, scaler: LossScaler | None = None,
                 device: Any = "cpu") -> None:
        if max_iter < 1:
            raise ConfigError(f"max_iter={max_iter}: expected >= 1")
        self.model, self.optimizer, self.data = model, optimizer, data
        self.max_iter, self.device = max_iter, device
        self.amp = amp or AmpPolicy()
        self.scaler = scaler or NoLossScaler()
        if self.amp.needs_scaling and isinstance(self.scaler, NoLossScaler):
            log.warning("fp16 autocast without a loss scaler: small gradients may underflow")
        self.hooks: list[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self._iterator: Iterator[Any] | None = None

    def register_hooks(self, hooks: Sequence[HookBase]) -> None:
        """Add hooks; they run in registration order."""
        for h in hooks:
            h.trainer = self
            self.hooks.append(h)

    def _call(self, method: str) -> None:
        for h in self.hooks:
            getattr(h, method)()

    def train(self) -> list[dict[str, float]]:
        """Run from ``start_iter`` to ``max_iter``; returns the per-step metrics."""
        self.model.train()
        log.info("training %d steps from %d, amp %s, %s", self.max_iter, self.start_iter,
                 self.amp.precision, self.scaler.describe())
        self._call("before_train")
        try:
            for i in range(self.start_iter, self.max_iter):
                self.iter = i
                self._call("before_step")
                self.run_step()
                self._call("after_step")
        finally:
            self._call("after_train")
        return self.history

    def _next_batch(self) -> Any:
        for _ in range(2):
            if self._iterator is None:
                self._iterator = iter(self.data)
            try:
                return next(self._iterator)
            except StopIteration:
                self._iterator = None
                self.epoch += 1
        raise ConfigError("training data is empty")

    def run_step(self) -> dict[str, float]:
        """One step: forward (autocast), scaled backward, unscale, check, step or skip."""
        t0 = time.perf_counter()
        batch = to_device(self._next_batch(), self.device)
        with self.amp.autocast():
            losses = self.model(batch)
        total = sum(v.float() for v in losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        scale = self.scaler.scale
        self.scaler.scale_loss(total).backward()
        stepped = self.scaler.step(self.optimizer)
        metrics = {"iter": self.iter, "epoch": self.epoch, "loss": float(total.detach()),
                   "scale": scale, "next_scale": self.scaler.scale, "overflow": not stepped,
                   "lr": float(self.optimizer.param_groups[0]["lr"]),
                   "time": time.perf_counter() - t0}
        metrics.update({k: float(v.detach()) for k, v in losses.items()})
        if not math.isfinite(metrics["loss"]):
            log.warning("iter %d: non-finite loss %s", self.iter, metrics["loss"])
        self.history.append(metrics)
        return metrics

    def save_checkpoint(self, path: str | os.PathLike[str], **extra: Any) -> Path:
        """Save model, optimizer, scaler and position atomically (``torch.save``)."""
        import torch

        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict(), "iter": self.iter + 1,
                 "epoch": self.epoch, "extra": extra}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return Path(path)

    def resume(self, path: str | os.PathLike[str]) -> int:
        """Restore a checkpoint from :meth:`save_checkpoint`; returns the next iteration.

        Raises:
            ModelError: not a checkpoint of this trainer's model.
        """
        import torch

        p = check_readable(path, "checkpoint")
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, TypeError, ValueError, EOFError,
                pickle.UnpicklingError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{p}: not a checkpoint of this model ({first})") from None
        self.start_iter, self.epoch = int(state["iter"]), int(state["epoch"])
        log.info("resumed from %s at iter %d (scale %g)", p, self.start_iter, self.scaler.scale)
        return self.start_iter
