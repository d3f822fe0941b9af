"""A PyTorch module built from a Darknet cfg, with ``.weights`` import and export.

torch is the optional extra ``train``: this module imports it lazily through
:func:`_torch`, so ``import viewfinder.detect`` never needs it.

    model = build_darknet("yolov3-tiny.cfg", "yolov3-tiny.weights")
    raw = model(images)          # one (N, A*(5+C), H, W) tensor per [yolo] layer

Darknet details kept: leaky slope 0.1; a maxpool pads ``padding = size - 1`` (its
default) on the right/bottom only, which is what makes YOLOv3-tiny's stride-1
size-2 maxpool keep 13x13; route ``groups``/``group_id`` take one channel slice
of each input (YOLOv4-tiny); ``[yolo]`` layers pass their input through (the
decode lives in :mod:`viewfinder.detect.yolo` and, for export, :class:`YoloDecode`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.detect.darknet_cfg import LayerSpec, NetSpec, YoloHead, parse_cfg, yolo_heads
from viewfinder.detect.darknet_weights import WeightsHeader, read_weights, write_weights
from viewfinder.errors import MissingDependencyError

__all__ = ["build_darknet", "load_weights", "save_weights"]

BN_EPS = 1e-5  # training (batch statistics), as torch and cuDNN Darknet use
DARKNET_STD_EPS = 1e-6  # eval: Darknet's CPU normalize_cpu, (x - mean) / (sqrt(var) + 1e-6)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "train", "building Darknet models") from None
    return torch


def _activation(name: str) -> Any:
    nn = _torch().nn
    return {
        "leaky": lambda: nn.LeakyReLU(0.1), "linear": nn.Identity, "mish": nn.Mish,
        "relu": nn.ReLU, "logistic": nn.Sigmoid, "swish": nn.SiLU,
    }[name]()


def _conv_block(layer: LayerSpec) -> Any:
    nn = _torch().nn
    size, bn = layer.get_int("size", 1), bool(layer.get_int("batch_normalize", 0))
    pad = size // 2 if layer.get_int("pad", 0) else layer.get_int("padding", 0)
    block = nn.Sequential()
    block.add_module("conv", nn.Conv2d(layer.in_shape[0], layer.get_int("filters"), size,
                                       layer.get_int("stride", 1), pad,
                                       groups=layer.get_int("groups", 1), bias=not bn))
    if bn:
        block.add_module("bn", _batch_norm_class()(layer.get_int("filters"), eps=BN_EPS,
                                                   momentum=0.01))
    block.add_module("act", _activation(layer.options.get("activation", "logistic")))
    return block


@functools.cache
def _batch_norm_class() -> Any:
    nn = _torch().nn

    class DarknetBatchNorm2d(nn.BatchNorm2d):
        """``BatchNorm2d`` that, in eval mode, normalises as Darknet's CPU code does:
        ``(x - mean) / (sqrt(var) + 1e-6)`` (the epsilon on the std, not the variance),
        so the module and the ONNX export (:func:`darknet_export._fold_bn`) agree."""

        def forward(self, x: Any) -> Any:
            if self.training or self.running_var is None:
                return super().forward(x)
            shape = (1, -1, 1, 1)
            k = self.weight / (self.running_var.sqrt() + DARKNET_STD_EPS)
            return (x - self.running_mean.view(shape)) * k.view(shape) + self.bias.view(shape)

    return DarknetBatchNorm2d


def _maxpool(layer: LayerSpec) -> Any:
    torch = _torch()
    size, stride = layer.get_int("size", 1), layer.get_int("stride", 1)
    padding = layer.get_int("padding", size - 1)
    before, after = padding // 2, padding - padding // 2

    class DarknetMaxPool(torch.nn.Module):
        """Darknet's maxpool: pad ``padding//2`` before and the rest after, then pool."""

        def forward(self, x: Any) -> Any:
            if padding:
                x = torch.nn.functional.pad(x, (before, after, before, after), mode="replicate")
            return torch.nn.functional.max_pool2d(x, size, stride)

    return DarknetMaxPool()


def _upsample(layer: LayerSpec) -> Any:
    return _torch().nn.Upsample(scale_factor=layer.get_int("stride", 2), mode="nearest")


def _make_network_class() -> Any:
    torch = _torch()

    class DarknetNetwork(torch.nn.Module):
        """The network of a Darknet cfg; ``forward`` returns the raw ``[yolo]`` inputs.

        Attributes:
            spec: The parsed cfg.
            heads: Decode parameters of the ``[yolo]`` layers.
            header: The header of the weights file loaded last (``None`` before).
        """

        def __init__(self, spec: NetSpec) -> None:
            super().__init__()
            self.spec = spec
            self.heads: list[YoloHead] = yolo_heads(spec)
            self.header: WeightsHeader | None = None
            factories = {"convolutional": _conv_block, "maxpool": _maxpool,
                         "upsample": _upsample}
            self.layers = torch.nn.ModuleList(
                factories[layer.kind](layer) if layer.kind in factories else torch.nn.Identity()
                for layer in spec.layers)
            self._keep = {i for layer in spec.layers if layer.kind in ("route", "shortcut")
                          for i in layer.inputs}

        def forward(self, x: Any) -> list[Any]:
            saved: dict[int, Any] = {}
            outputs = []
            for layer, module in zip(self.spec.layers, self.layers, strict=True):
                if layer.kind == "route":
                    x = _route(layer, [saved[i] for i in layer.inputs])
                elif layer.kind == "shortcut":
                    x = x + saved[layer.inputs[1]]
                    act = layer.options.get("activation", "linear")
                    x = _activation(act)(x) if act != "linear" else x
                elif layer.kind == "yolo":
                    outputs.append(x)
                else:
                    x = module(x)
                if layer.index in self._keep:
                    saved[layer.index] = x
            return outputs

    return DarknetNetwork


def _route(layer: LayerSpec, inputs: list[Any]) -> Any:
    torch = _torch()
    groups, gid = layer.get_int("groups", 1), layer.get_int("group_id", 0)
    if groups > 1:
        inputs = [t[:, gid * (t.shape[1] // groups):(gid + 1) * (t.shape[1] // groups)]
                  for t in inputs]
    return inputs[0] if len(inputs) == 1 else torch.cat(inputs, 1)


def build_darknet(cfg: str | os.PathLike[str] | NetSpec,
                  weights: str | os.PathLike[str] | None = None,
                  *, strict: bool = True) -> Any:
    """Build the torch module of a Darknet cfg, optionally loading ``.weights``.

    Args:
        cfg: A ``.cfg`` path or an already parsed :class:`NetSpec`.
        weights: A ``.weights`` file for it (None: random initialisation).
        strict: Fail on bytes left over after the last layer.

    Returns:
        A ``torch.nn.Module`` in eval mode whose forward returns the raw output of
        every ``[yolo]`` layer.

    Raises:
        MissingDependencyError: torch is not installed.
        ConfigError, ModelError: bad cfg or weights (the message names the layer).
    """
    spec = cfg if isinstance(cfg, NetSpec) else parse_cfg(cfg)
    model = _make_network_class()(spec)
    if weights is not None:
        load_weights(model, weights, strict=strict)
    return model.eval()


def load_weights(model: Any, path: str | os.PathLike[str], *, strict: bool = True) -> WeightsHeader:
    """Copy a ``.weights`` file into a model from :func:`build_darknet`; returns the header."""
    torch = _torch()
    header, tensors = read_weights(path, model.spec, strict=strict)
    with torch.no_grad():
        for index, parts in tensors.items():
            block = model.layers[index]
            if "bn_weight" in parts:
                block.bn.bias.copy_(torch.from_numpy(parts["bias"]))
                block.bn.weight.copy_(torch.from_numpy(parts["bn_weight"]))
                block.bn.running_mean.copy_(torch.from_numpy(parts["bn_mean"]))
                block.bn.running_var.copy_(torch.from_numpy(parts["bn_var"]))
            else:
                block.conv.bias.copy_(torch.from_numpy(parts["bias"]))
            block.conv.weight.copy_(torch.from_numpy(parts["weight"]))
    model.header = header
    return header


def save_weights(model: Any, path: str | os.PathLike[str], seen: int = 0) -> Path:
    """Write a model from :func:`build_darknet` as a Darknet ``.weights`` file (atomic)."""
    tensors: dict[int, dict[str, np.ndarray]] = {}
    for layer in model.spec.layers:
        if layer.kind != "convolutional":
            continue
        block = model.layers[layer.index]
        parts = {"weight": block.conv.weight.detach().float().cpu().numpy()}
        if hasattr(block, "bn"):
            parts.update(bias=block.bn.bias, bn_weight=block.bn.weight,
                         bn_mean=block.bn.running_mean, bn_var=block.bn.running_var)
        else:
            parts["bias"] = block.conv.bias
        tensors[layer.index] = {k: v if isinstance(v, np.ndarray)
                                else v.detach().float().cpu().numpy() for k, v in parts.items()}
    return write_weights(path, model.spec, tensors, seen)
