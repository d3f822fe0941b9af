"""ONNX Runtime backend."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from viewfinder.errors import BackendError, ConfigError, ModelError, ProviderError
from viewfinder.runtime.base import Session, TensorInfo
from viewfinder.runtime.threads import thread_budget

__all__ = ["PRECISIONS", "PROVIDERS", "OrtSession", "available_providers", "graph_precision"]

log = logging.getLogger(__name__)

# Short names accepted by --provider, mapped to ONNX Runtime execution providers.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cann": "CANNExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
}


def available_providers() -> list[str]:
    """Short names of the execution providers this onnxruntime build offers."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [short for short, full in PROVIDERS.items() if full in have]


#: Precisions a caller may ask for, on any backend.
PRECISIONS = ("f32", "bf16", "fp16", "int8")
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
              "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}


def graph_precision(path: str | Path) -> str:
    """The precision an ONNX file is stored in: ``"int8"`` (quantized ops), ``"fp16"``
    (float16 weights dominate) or ``"f32"``.

    Read from the file's protobuf fields directly (:mod:`viewfinder.runtime.onnx_wire`):
    ``import onnx`` alone would cost more than loading the session.

    Raises:
        DecodeError: not a protobuf message (:class:`viewfinder.runtime.onnx_wire.DecodeError`).
    """
    from viewfinder.runtime.onnx_wire import FLOAT, FLOAT16, read_summary

    summary = read_summary(path)
    if any(op in _QUANT_OPS for op in summary.op_types):
        return "int8"
    f16 = sum(1 for t in summary.initializer_types if t == FLOAT16)
    f32 = sum(1 for t in summary.initializer_types if t == FLOAT)
    return "fp16" if f16 > f32 else "f32"


def _check_precision(path: str, precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    try:
        stored = graph_precision(path)
    except Exception as exc:  # protobuf decode errors are untyped
        raise ModelError(f"{path}: not an ONNX model ({type(exc).__name__})") from exc
    if precision != "f32" and precision != stored:
        raise ConfigError(
            f"{path}: precision {precision} on ort needs a model stored in {precision} "
            f"(this one is {stored}; make one with `viewfinder convert`, or use "
            "--backend openvino)"
        )
    return stored


def _info(node) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else (d or None) for d in node.shape)
    return TensorInfo(node.name, shape, np.dtype(_ORT_TYPES.get(node.type, np.float32)))


class OrtSession(Session):
    """An ONNX model on ONNX Runtime with an explicit execution provider.

    Args:
        path: The ``.onnx`` file.
        provider: A short name from :data:`PROVIDERS` or ``"auto"`` (best available,
            logged). A named provider that is missing raises :class:`ProviderError`;
            it never falls back silently.
        intra_threads: Intra-op threads (0 = ONNX Runtime's default).
        inter_threads: Inter-op threads (0 = default).
        graph_optimization: ``"all"``, ``"extended"``, ``"basic"`` or ``"disable"``.
        precision: ``"f32"``, or the precision the graph itself is stored in
            (``"fp16"``, ``"int8"``): ONNX Runtime's CPU kernels run the graph's own
            types, so another precision needs a converted model (``viewfinder convert``).
        spin: Let idle intra-op threads spin (lower latency alone, but they steal the
            cores from other sessions and processes; off by default, see runtime docs).
    """

    backend = "ort"

    def __init__(
        self,
        path: str | Path,
        provider: str = "cpu",
        intra_threads: int = 0,
        inter_threads: int = 0,
        graph_optimization: str = "all",
        precision: str = "f32",
        spin: bool = False,
    ) -> None:
        import onnxruntime as ort

        self.path = str(path)
        if not Path(path).is_file():
            raise ModelError(f"{path}: no such model file")
        self.precision = _check_precision(self.path, precision)
        chosen = self._choose_provider(provider)
        opts = ort.SessionOptions()
        self.threads = thread_budget(intra_threads)
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = inter_threads or 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        opts.graph_optimization_level = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }[graph_optimization]
        opts.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(self.path, opts, providers=[PROVIDERS[chosen]])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if any(k in first for k in ("NOT_IMPLEMENTED", "implementation for",
                                        "not a registered function/op")):
                raise BackendError(
                    f"{path}: {PROVIDERS[chosen]} cannot run this model ({first[:200]})"
                ) from exc
            raise ModelError(f"{path}: not a loadable ONNX model ({first[:200]})") from exc
        self.device = self._sess.get_providers()[0]
        if self.device != PROVIDERS[chosen]:
            raise ProviderError(f"{path}: asked for {PROVIDERS[chosen]}, runs on {self.device}")
        self._inputs = [_info(n) for n in self._sess.get_inputs()]
        self._outputs = [_info(n) for n in self._sess.get_outputs()]

    @staticmethod
    def _choose_provider(provider: str) -> str:
        have = available_providers()
        if provider == "auto":
            for short in ("tensorrt", "cuda", "cann", "coreml", "openvino", "cpu"):
                if short in have:
                    log.info("provider auto: chose %s (available: %s)", short, ", ".join(have))
                    return short
        if provider not in PROVIDERS:
            raise ProviderError(
                f"provider {provider!r}: expected one of auto, {', '.join(PROVIDERS)}"
            )
        if provider not in have:
            raise ProviderError(
                f"provider {provider!r} is not available in this onnxruntime build "
                f"(available: {', '.join(have)})"
            )
        return provider

    def run(self, feeds: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Run the model; a bare array feeds the single input. Returns outputs in order.

        Raises:
            ShapeError: a missing input or a shape that contradicts a fixed dimension.
            BackendError: ONNX Runtime rejected the call (message's first line).
        """
        feeds = self._feeds(feeds)
        try:
            return self._sess.run(None, feeds)
        except Exception as exc:
            self.check_feeds(feeds)
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"{self.path}: inference failed ({msg})") from exc
