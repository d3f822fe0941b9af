"""OpenVINO backend (the ``openvino`` extra): CPU plugin, and GPU/NPU where present.

Precision is always set explicitly: OpenVINO's CPU plugin otherwise switches to
bf16 on CPUs that have it, which moves raw outputs visibly. A precision the
device cannot run is an error, never a silent substitution. A model with dynamic
dimensions first runs on one dynamically compiled model; a shape seen a few times
gets a statically compiled model of its own (a small LRU cache), which the CPU
plugin runs 10-20 % faster (measured on 2d106det, batch 1 and 6). That compile runs on
a background thread (OpenVINO releases the GIL): the calls go on on the dynamic model
meanwhile, and switch to the static one when it is ready, so no call waits for a
compile (the static one used to cost the third call of a new face count 0.3 s).

Compiled models are cached on disk by OpenVINO (``CACHE_DIR`` =
``cache_dir()/openvino``): a later process imports the blob instead of compiling
(2d106det: about 0.1 s of CPU instead of 0.3-0.7 s). OpenVINO keys the blobs by the
model's content (the model is passed as an object, never as a path: by path OpenVINO
keys by the path alone and returns a stale blob after the file changed). A cache folder
that cannot be written is skipped (logged at debug level).

:meth:`OvSession.run_many` runs independent calls on a second compilation with one
stream per thread (one infer request each, one thread each; compiled in the background
from the second call on, the calls running one after another until it is ready): on the 2-core AVX2 host
the 383 faces of ``crowd_selfie.jpg`` in chunks of 8 took 0.73 s instead of 0.93 s on
the one two-thread stream, the next chunk being cropped while two run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.config import cache_dir
from viewfinder.errors import (
    BackendError,
    ConfigError,
    MissingDependencyError,
    ModelError,
    ProviderError,
    ShapeError,
)
from viewfinder.runtime.base import Session, TensorInfo, concrete_shape
from viewfinder.runtime.ort import PRECISIONS
from viewfinder.runtime.threads import thread_budget

__all__ = ["OvSession", "available_devices", "import_openvino", "model_cache_dir", "ov_version"]

log = logging.getLogger(__name__)

_HINTS = {"f32": "f32", "bf16": "bf16", "fp16": "f16"}
_CAPS = {"bf16": "BF16", "fp16": "FP16", "int8": "INT8"}
_CORE: Any = None
_CORE_LOCK = threading.Lock()
_MAX_SHAPES = 8
_PROMOTE = 3
_COMPILER: ThreadPoolExecutor | None = None  # one thread: background static compiles


def _compiler() -> ThreadPoolExecutor:
    """The thread that compiles promoted shapes (joined at exit by concurrent.futures)."""
    global _COMPILER
    with _CORE_LOCK:
        if _COMPILER is None:
            _COMPILER = ThreadPoolExecutor(1, thread_name_prefix="ov-compile")
        return _COMPILER


def model_cache_dir() -> Path | None:
    """``cache_dir()/openvino``, OpenVINO's compiled-model cache, or None when it cannot
    be created or written (then every process compiles)."""
    path = cache_dir() / "openvino"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.debug("OpenVINO model cache off: %s", exc)
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        log.debug("OpenVINO model cache off: %s is not writable", path)
        return None
    return path


_IMPORT_LOCK = threading.Lock()
_OVC = "openvino.tools.ovc"


def _ov_getattr(name: str) -> Any:
    """``openvino.convert_model``, imported on first access (see :func:`import_openvino`)."""
    if name == "convert_model":
        from openvino.tools.ovc import convert_model

        return convert_model
    raise AttributeError(f"module 'openvino' has no attribute {name!r}")


def import_openvino() -> Any:
    """Import :mod:`openvino` or raise a one-line error naming the extra to install.

    ``import openvino`` also imports its model conversion API (``openvino.tools.ovc``:
    0.15 of the import's 0.23 s of CPU here), which sessions never use: it is left out
    of the import, and ``openvino.convert_model`` imports it when first used.
    """
    loaded = sys.modules.get("openvino")
    if loaded is not None:
        return loaded
    with _IMPORT_LOCK:
        block = _OVC not in sys.modules
        if block:
            sys.modules[_OVC] = None  # type: ignore[assignment]  # openvino skips it then
        try:
            import openvino
        except ImportError as exc:
            raise MissingDependencyError("openvino", "openvino", "--backend openvino") from exc
        finally:
            if block and sys.modules.get(_OVC, 0) is None:
                del sys.modules[_OVC]
        if block and "convert_model" not in vars(openvino):
            vars(openvino).setdefault("__getattr__", _ov_getattr)
    return openvino


def _core() -> Any:
    """The one ``ov.Core`` of the process (one TBB arena shared by all compiled models)."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = import_openvino().Core()
        return _CORE


def ov_version() -> str:
    """The installed OpenVINO version, or ``"none"``."""
    try:
        return str(import_openvino().__version__)
    except MissingDependencyError:
        return "none"


def available_devices() -> list[str]:
    """OpenVINO devices present (``CPU``, ``GPU``, ``NPU``...)."""
    return list(_core().available_devices)


def _info(port: Any) -> TensorInfo:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorInfo(port.get_any_name(), shape, np.dtype(port.get_element_type().to_dtype()))


class OvSession(Session):
    """An ONNX (or OpenVINO IR) model compiled by OpenVINO.

    Args:
        path: ``.onnx`` or ``.xml`` file.
        device: ``"cpu"``, ``"gpu"``, ``"npu"`` (case-insensitive) or a full OpenVINO
            device name. Missing devices raise :class:`ProviderError`.
        precision: ``"f32"`` (default), ``"bf16"`` or ``"fp16"``: the inference precision
            hint, checked against the device's capabilities and read back after
            compiling. ``"int8"`` needs a quantized model.
        threads: Inference threads (0 = the process budget); one stream, latency hint.
    """

    backend = "openvino"

    def __init__(self, path: str | Path, device: str = "cpu", precision: str = "f32",
                 threads: int = 0) -> None:
        self.path = str(path)
        if not Path(path).is_file():
            raise ModelError(f"{path}: no such model file")
        stored = None
        if Path(path).suffix.lower() == ".onnx":
            from viewfinder.runtime.ort import graph_precision

            try:
                stored = graph_precision(path)
            except Exception as exc:  # protobuf decode errors are untyped
                raise ModelError(f"{path}: not an ONNX model ({type(exc).__name__})") from exc
        core = _core()
        self.device = self._check_device(core, device)
        self.precision = self._check_precision(core, precision, stored)
        self.threads = thread_budget(threads)
        try:
            self._model = core.read_model(self.path)
        except Exception as exc:  # OpenVINO raises untyped RuntimeErrors
            raise BackendError(f"{path}: OpenVINO cannot read this model ({_first(exc)})") from exc
        self._inputs = [_info(p) for p in self._model.inputs]
        self._outputs = [_info(p) for p in self._model.outputs]
        self._compiled: OrderedDict[tuple, Any] = OrderedDict()
        self._seen: dict[tuple, int] = {}
        self._pending: set[tuple] = set()  # shapes being compiled in the background
        self._cache = model_cache_dir()
        self._dynamic: Any = None
        self._streams: Any = None  # AsyncInferQueue over a one-stream-per-thread model
        self._streams_pending = False
        self._many_calls = 0
        self._dynamic_ok = self.device.startswith("CPU")  # GPU/NPU plugins want static shapes
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()  # self._model: one user at a time
        self._run_lock = threading.Lock()  # one infer request per shape: serialise callers
        if not any(i.is_dynamic for i in self._inputs):
            self._request(tuple(tuple(int(d) for d in i.shape) for i in self._inputs), True)

    @staticmethod
    def _check_device(core: Any, device: str) -> str:
        name = device.upper()
        have = list(core.available_devices)
        if not any(d == name or d.startswith(name + ".") for d in have):
            raise ProviderError(f"OpenVINO device {device!r} is not available "
                                f"(available: {', '.join(have)})")
        return name

    def _check_precision(self, core: Any, precision: str, stored: str | None) -> str:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        if precision == "f32":
            return precision
        caps = core.get_property(self.device, "OPTIMIZATION_CAPABILITIES")
        if _CAPS[precision] not in caps:
            raise ProviderError(
                f"OpenVINO {self.device} on this host cannot run {precision} "
                f"(capabilities: {', '.join(caps)}); it would silently run another precision"
            )
        if precision == "int8" and stored not in (None, "int8"):
            raise ConfigError(f"{self.path}: precision int8 needs a quantized model "
                                  "(make one with `viewfinder convert --int8`)")
        return precision

    def _config(self, streams: int = 1) -> dict[str, Any]:
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY" if streams == 1 else
                                  "THROUGHPUT", "NUM_STREAMS": str(streams)}
        if self.device.startswith("CPU"):
            config["INFERENCE_NUM_THREADS"] = self.threads
        # int8 models keep their float parts in f32 (never the CPU plugin's bf16 default)
        config["INFERENCE_PRECISION_HINT"] = _HINTS.get(self.precision, "f32")
        if self._cache is not None:
            config["CACHE_DIR"] = str(self._cache)
        return config

    def _compile(self, shapes: tuple[tuple[int, ...], ...] | None, streams: int = 1) -> Any:
        """Compile for these shapes (None: as the model is); an infer request, or with
        ``streams`` > 1 the compiled model itself."""
        model, own = self._model, False
        if shapes is not None and any(i.is_dynamic for i in self._inputs):
            with self._model_lock:  # the background compiler clones it too
                model, own = self._model.clone(), True
            try:
                model.reshape({p: list(s) for p, s in zip(model.inputs, shapes, strict=True)})
            except Exception as exc:  # OpenVINO's shape inference raises RuntimeError
                raise ShapeError(f"{self.path}: cannot run at input shapes "
                                 f"{[list(s) for s in shapes]} ({_first(exc)})") from exc
        try:
            with contextlib.nullcontext() if own else self._model_lock:
                compiled = _core().compile_model(model, self.device, self._config(streams))
        except Exception as exc:
            raise BackendError(f"{self.path}: OpenVINO {self.device} cannot compile "
                               f"this model ({_first(exc)})") from exc
        got = _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        if got != _HINTS.get(self.precision, "f32"):
            raise ProviderError(f"{self.path}: asked OpenVINO for {self.precision}, "
                                f"it compiled {got}")
        log.debug("compiled %s for %s on %s (%d streams)", self.path, shapes, self.device,
                  streams)
        return compiled.create_infer_request() if streams == 1 else compiled

    def _request(self, shapes: tuple[tuple[int, ...], ...], static: bool = False) -> Any:
        """The infer request for these shapes.

        A new shape of a dynamic model runs on the one dynamically compiled model; once
        it has been seen ``_PROMOTE`` times it gets a statically compiled model of its
        own (10-20 % faster on the CPU plugin), compiled in the background while the
        calls go on on the dynamic one. ``static`` compiles it now, in this thread.
        """
        with self._lock:
            req = self._compiled.get(shapes)
            if req is not None:
                self._compiled.move_to_end(shapes)
                return req
            if len(self._seen) > 256:  # many one-off shapes: forget the counts
                self._seen.clear()
            seen = self._seen[shapes] = self._seen.get(shapes, 0) + 1
            if not static and self._dynamic_ok:
                if seen >= _PROMOTE and shapes not in self._pending:
                    self._pending.add(shapes)
                    _compiler().submit(self._promote, shapes)
                if self._dynamic is None:
                    self._dynamic = self._compile(None)
                return self._dynamic
            return self._keep(shapes, self._compile(shapes))

    def _keep(self, shapes: tuple[tuple[int, ...], ...], req: Any) -> Any:
        """Cache a static request (caller holds ``_lock``), least recently used out."""
        self._compiled[shapes] = req
        self._compiled.move_to_end(shapes)
        if len(self._compiled) > _MAX_SHAPES:
            self._compiled.popitem(last=False)
        return req

    def _promote(self, shapes: tuple[tuple[int, ...], ...]) -> None:
        """Background job: compile ``shapes`` statically; later calls use it. A shape
        that does not compile stays on the dynamic model (and is not tried again)."""
        try:
            req = self._compile(shapes)
        except Exception as exc:  # noqa: BLE001 - the dynamic model keeps serving it
            log.debug("%s: no static model for %s (%s)", self.path, shapes, exc)
            return
        with self._lock:
            if shapes in self._pending:  # not closed meanwhile
                self._pending.discard(shapes)
                self._keep(shapes, req)

    def wait_compiled(self, timeout: float | None = None) -> None:
        """Wait until the background compiles started so far are done (tests, benchmarks)."""
        _compiler().submit(lambda: None).result(timeout)

    def reshape(self, shapes: Mapping[str, Sequence[int]]) -> None:
        """Compile the model for these input shapes now (cached for later ``run`` calls).

        Raises:
            ShapeError: a shape contradicts a fixed dimension, or one is missing.
        """
        self._request(tuple(concrete_shape(i, shapes.get(i.name), self.path)
                            for i in self._inputs), True)

    def run(self, feeds: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Run the model; a bare array feeds the single input. Returns outputs in order.

        Raises:
            ShapeError: a missing input or a shape that contradicts a fixed dimension.
            BackendError: OpenVINO rejected the call.
        """
        feeds = self._feeds(feeds)
        self.check_feeds(feeds)
        arrays = [np.ascontiguousarray(feeds[i.name]) for i in self._inputs]
        req = self._request(tuple(a.shape for a in arrays))
        with self._run_lock:
            try:
                req.infer(arrays, share_inputs=True)
            except Exception as exc:
                raise BackendError(f"{self.path}: inference failed ({_first(exc)})") from exc
            return [req.get_output_tensor(i).data.copy() for i in range(len(self._outputs))]

    def run_many(self, feeds: Iterable[Mapping[str, np.ndarray] | np.ndarray]
                 ) -> list[list[np.ndarray]]:
        """Run independent calls side by side, one stream per thread (see
        :meth:`Session.run_many`); on one thread or a non-CPU device, one after another.

        Raises:
            ShapeError: a missing input or a shape that contradicts a fixed dimension.
            BackendError: OpenVINO rejected a call.
        """
        if self.threads < 2 or not self.device.startswith("CPU"):
            return super().run_many(feeds)
        if self._streams is None:  # one by one until the streams are compiled, in the
            self._many_calls += 1  # background from the second call on (a process that
            if self._many_calls >= 2:  # calls once, e.g. one photo, compiles nothing)
                self._start_streams()
            return super().run_many(feeds)
        results: dict[int, list[np.ndarray]] = {}

        def done(request: Any, index: int) -> None:
            results[index] = [request.get_output_tensor(i).data.copy()
                              for i in range(len(self._outputs))]

        with self._run_lock:
            queue = self._streams
            queue.set_callback(done)
            started = 0
            try:  # errors of the caller's generator and our checks propagate as they are
                for index, item in enumerate(feeds):
                    arrays = self._feeds(item)
                    self.check_feeds(arrays)
                    self._start(queue, [arrays[i.name] for i in self._inputs], index)
                    started += 1
            finally:
                self._wait(queue)
        if len(results) != started:
            raise BackendError(f"{self.path}: {started - len(results)} of {started} calls "
                               "returned no outputs")
        return [results[i] for i in range(started)]

    def _start_streams(self) -> None:
        """Compile the one-stream-per-thread model for :meth:`run_many` in the background."""
        with self._lock:
            if self._streams_pending:
                return
            self._streams_pending = True

        def build() -> None:
            try:
                queue = import_openvino().AsyncInferQueue(self._compile(None, self.threads),
                                                          self.threads)
            except Exception as exc:  # noqa: BLE001 - run_many stays one call at a time
                log.debug("%s: no streams for run_many (%s)", self.path, exc)
                return
            with self._lock:
                if self._streams_pending:  # not closed meanwhile
                    self._streams = queue

        _compiler().submit(build)

    def _start(self, queue: Any, arrays: list[np.ndarray], index: int) -> None:
        try:  # copies the inputs: the caller may refill its buffer right away
            queue.start_async([np.ascontiguousarray(a) for a in arrays], index,
                              share_inputs=False)
        except Exception as exc:  # OpenVINO raises untyped RuntimeErrors
            raise BackendError(f"{self.path}: inference failed ({_first(exc)})") from exc

    def _wait(self, queue: Any) -> None:
        try:
            queue.wait_all()
        except Exception as exc:
            raise BackendError(f"{self.path}: inference failed ({_first(exc)})") from exc

    def close(self) -> None:
        """Drop the compiled models."""
        with self._lock:
            self._compiled.clear()
            self._pending = set()  # compiles still running are dropped when they end
            self._dynamic = None
            self._streams = None
            self._streams_pending = False


def _type_name(hint: Any) -> str:
    """``<Type: 'bfloat16'>`` (or ``bf16``) -> ``bf16``; likewise f32, f16."""
    text = str(hint).lower()
    for full, short in (("bfloat16", "bf16"), ("float16", "f16"), ("float32", "f32")):
        if full in text:
            return short
    return text.strip("<>' ").removeprefix("type: ")


def _first(exc: BaseException) -> str:
    """The informative line of an OpenVINO error (its first lines are source locations)."""
    lines = [ln.strip(" -") for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    for ln in useful:
        if "operations:" in ln or "No conversion rule" in ln:
            return ln[:200]
    return (useful[-1] if useful else lines[0] if lines else type(exc).__name__)[:200]
