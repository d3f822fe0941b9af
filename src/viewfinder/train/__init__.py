"""Training: a small generic loop with hooks, mixed precision and our own loss scaler.

Needs the optional extra ``train`` (torch); modules import torch lazily.
"""

from viewfinder.train.amp import AmpPolicy, resolve_device
from viewfinder.train.hooks import CheckpointHook, EvalHook, HookBase, LoggingHook, LRWarmupHook
from viewfinder.train.scaler import (
    DynamicLossScaler,
    LossScaler,
    NoLossScaler,
    StaticLossScaler,
    gradients_overflow,
    make_scaler,
    npu_overflow_check,
)
from viewfinder.train.trainer import Trainer, to_device

__all__ = [
    "AmpPolicy", "CheckpointHook", "DynamicLossScaler", "EvalHook", "HookBase", "LRWarmupHook",
    "LoggingHook", "LossScaler", "NoLossScaler", "StaticLossScaler", "Trainer",
    "gradients_overflow", "make_scaler", "npu_overflow_check", "resolve_device", "to_device",
]
