"""Trainer hooks (detectron2's ``HookBase`` idea) and the standard ones.

A hook sees the trainer before/after training and before/after every step. The
trainer records one dict of metrics per step in ``trainer.history`` (``iter``,
``loss``, each loss term, ``scale``, ``overflow``, ``lr``, ``time``); hooks read it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CheckpointHook", "EvalHook", "HookBase", "LoggingHook", "LRWarmupHook"]

log = logging.getLogger(__name__)


class HookBase:
    """Override any of the four methods; ``self.trainer`` is set on registration."""

    trainer: Any = None

    def before_train(self) -> None:
        """Called once before the first step."""

    def after_train(self) -> None:
        """Called once after the last step (also when training stops on an error)."""

    def before_step(self) -> None:
        """Called before every step."""

    def after_step(self) -> None:
        """Called after every step; ``self.trainer.history[-1]`` holds its metrics."""


class LoggingHook(HookBase):
    """Logs every step's loss and loss scale and forwards the metrics to a callback.

    Args:
        period: Log every ``period`` steps (the callback sees every step).
        callback: Called with each step's metrics dict (e.g. a CLI progress bar).
    """

    def __init__(self, period: int = 1, callback: Callable[[dict], None] | None = None) -> None:
        self.period, self.callback = max(1, period), callback

    def after_step(self) -> None:
        m = self.trainer.history[-1]
        if m["iter"] % self.period == 0 or m["overflow"]:
            log.info("iter %d loss %.4f scale %g%s", m["iter"], m["loss"], m["scale"],
                     " (overflow, skipped)" if m["overflow"] else "")
        if self.callback is not None:
            self.callback(m)


class CheckpointHook(HookBase):
    """Saves a checkpoint every ``period`` steps and at the end.

    Args:
        directory: Where ``last.pt`` (and ``iter_<n>.pt`` when ``keep_all``) go.
        period: Steps between checkpoints.
        keep_all: Also keep one file per checkpoint.
    """

    def __init__(self, directory: str | os.PathLike[str], period: int,
                 keep_all: bool = False) -> None:
        self.directory, self.period, self.keep_all = Path(directory), max(1, period), keep_all

    def _save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.trainer.save_checkpoint(self.directory / "last.pt")
        if self.keep_all:
            self.trainer.save_checkpoint(self.directory / f"iter_{self.trainer.iter:07d}.pt")

    def after_step(self) -> None:
        if (self.trainer.iter + 1) % self.period == 0:
            self._save()

    def after_train(self) -> None:
        if self.trainer.iter + 1 >= self.trainer.max_iter:
            self._save()


class EvalHook(HookBase):
    """Runs ``fn()`` every ``period`` steps and after training; results go to ``results``."""

    def __init__(self, period: int, fn: Callable[[], dict[str, float]]) -> None:
        self.period, self.fn = period, fn
        self.results: list[tuple[int, dict[str, float]]] = []

    def _run(self) -> None:
        was_training = self.trainer.model.training
        out = self.fn()
        self.trainer.model.train(was_training)
        self.results.append((self.trainer.iter, out))
        log.info("eval at iter %d: %s", self.trainer.iter, out)

    def after_step(self) -> None:
        if self.period and (self.trainer.iter + 1) % self.period == 0 \
                and self.trainer.iter + 1 < self.trainer.max_iter:
            self._run()

    def after_train(self) -> None:
        self._run()


class LRWarmupHook(HookBase):
    """Linear warm-up of every param group's learning rate over ``steps`` (Darknet's burn_in
    uses a power of 4; linear is the common choice and gentler on tiny data)."""

    def __init__(self, steps: int) -> None:
        self.steps = max(0, steps)
        self._base: list[float] = []

    def before_train(self) -> None:
        self._base = [g.get("initial_lr", g["lr"]) for g in self.trainer.optimizer.param_groups]
        for g, lr in zip(self.trainer.optimizer.param_groups, self._base, strict=True):
            g["initial_lr"] = lr

    def before_step(self) -> None:
        factor = min(1.0, (self.trainer.iter + 1) / self.steps) if self.steps else 1.0
        for g, lr in zip(self.trainer.optimizer.param_groups, self._base, strict=True):
            g["lr"] = lr * factor
