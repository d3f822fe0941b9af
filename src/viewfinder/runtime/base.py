"""The backend interface every inference engine implements.

A :class:`Session` is one loaded model on one backend and device. Task packages
(faces, detect) talk to this interface only, never to onnxruntime or openvino
directly.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from viewfinder.errors import FormatError, ShapeError, check_shape

__all__ = ["Session", "TensorInfo", "concrete_shape", "match_outputs_by_shape"]


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape and dtype of a model input or output.

    ``shape`` entries are ints for fixed dimensions and ``None`` (or the symbolic
    name as a str) for dynamic ones.
    """

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype

    @property
    def is_dynamic(self) -> bool:
        """True when any dimension is not a fixed int."""
        return any(not isinstance(d, int) or d < 0 for d in self.shape)


class Session(abc.ABC):
    """One model loaded on one backend.

    Attributes:
        path: The model file.
        backend: ``"ort"`` or ``"openvino"``.
        device: What really runs it, e.g. ``"CPUExecutionProvider"`` or ``"CPU"``.
        precision: ``"f32"`` unless another precision was asked for (or the file is
            stored in one).
        threads: Intra-op threads it uses.
        choice_reason: Why this backend runs it (``backend="auto"``), else ``""``.
    """

    path: str
    backend: str
    device: str
    precision: str = "f32"
    threads: int = 0
    #: Why this backend runs the model (set by ``backend="auto"``; "" when asked for).
    choice_reason: str = ""

    # Filled by each backend's constructor from the loaded model.
    _inputs: list[TensorInfo]
    _outputs: list[TensorInfo]

    @property
    def inputs(self) -> list[TensorInfo]:
        """Model inputs, in graph order."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        """Model outputs, in graph order."""
        return self._outputs

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Run the model; a bare array feeds the single input. Returns outputs in order."""

    def run_many(self, feeds: Iterable[Mapping[str, np.ndarray] | np.ndarray]
                 ) -> list[list[np.ndarray]]:
        """Run several independent calls; their outputs in the order of ``feeds``.

        ``feeds`` may be a generator: an item is asked for only once the one before has
        been handed to the backend (copied or run), so the caller may prepare each input
        in one reused buffer, while earlier calls still run. Backends that can run calls
        side by side override this (OpenVINO: one infer request per stream, one thread
        each); the default runs them one after another. For a single call, ``run`` is the
        faster choice.
        """
        return [self.run(f) for f in feeds]

    def reshape(self, shapes: Mapping[str, Sequence[int]]) -> None:  # noqa: B027
        """Prepare for these input shapes ahead of ``run`` (compiles them where that helps).

        Backends that handle dynamic shapes natively do nothing.
        """

    def warmup(self, runs: int = 1, shapes: Mapping[str, Sequence[int]] | None = None) -> None:
        """Run the model ``runs`` times on zeros so the first real call is not slow.

        Args:
            runs: How many warm-up calls.
            shapes: Input shapes; required for inputs with dynamic dimensions.

        Raises:
            ShapeError: an input has dynamic dimensions and no shape was given.
        """
        if runs <= 0:
            return
        feeds = {i.name: np.zeros(concrete_shape(i, (shapes or {}).get(i.name), self.path),
                                  dtype=i.dtype) for i in self.inputs}
        for _ in range(runs):
            self.run(feeds)

    def close(self) -> None:  # noqa: B027
        """Release the backend's resources (sessions are also freed when collected)."""

    def describe(self) -> str:
        """One line: backend, device, precision, threads and the file (and why, for auto)."""
        line = f"{self.backend} on {self.device} ({self.precision}, {self.threads} threads): "
        line += self.path
        return f"{line} [{self.choice_reason}]" if self.choice_reason else line

    def _feeds(self, feeds: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        if isinstance(feeds, np.ndarray):
            if len(self.inputs) != 1:
                names = ", ".join(i.name for i in self.inputs)
                raise ShapeError(f"{self.path}: model has inputs {names}; pass a dict")
            return {self.inputs[0].name: feeds}
        return dict(feeds)

    def check_feeds(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Check feeds against the inputs: one-line errors for missing inputs and shapes
        that contradict fixed dims.

        Raises:
            ShapeError: with the input's name and expected vs actual shape.
            FormatError: an input of the wrong dtype.
        """
        for info in self.inputs:
            if info.name not in feeds:
                raise ShapeError(f"{self.path}: input {info.name!r} not given "
                                 f"(got {', '.join(feeds) or 'nothing'})")
            pattern = [d if isinstance(d, int) and d >= 0 else None for d in info.shape]
            check_shape(feeds[info.name], pattern, f"{self.path}: input {info.name!r}")
            dtype = getattr(feeds[info.name], "dtype", None)
            if dtype != info.dtype:
                raise FormatError(f"{self.path}: input {info.name!r}: dtype {dtype}, "
                                  f"expected {info.dtype}")


def concrete_shape(info: TensorInfo, shape: Sequence[int] | None, model: str = "model"
                   ) -> tuple[int, ...]:
    """The input shape to use: ``shape`` if given (checked), else the fixed dims.

    Raises:
        ShapeError: dynamic dims and no shape, or a shape that contradicts fixed dims.
    """
    if shape is None:
        if info.is_dynamic:
            dims = ", ".join(str(d) if isinstance(d, int) else "?" for d in info.shape)
            raise ShapeError(f"{model}: input {info.name!r} has dynamic dims ({dims}); "
                             "give its shape (e.g. --shape 1,3,640,640)")
        return tuple(int(d) for d in info.shape)  # type: ignore[arg-type]
    pattern = [d if isinstance(d, int) and d >= 0 else None for d in info.shape]
    check_shape(_Shaped(tuple(shape)), pattern,
                f"{model}: input {info.name!r}")
    return tuple(int(d) for d in shape)


@dataclass(frozen=True)
class _Shaped:
    shape: Sequence[int]


def match_outputs_by_shape(
    outputs: Sequence[np.ndarray], last_dims: Sequence[int]
) -> dict[int, list[int]]:
    """Group output indices by their last dimension.

    Useful for models whose output names carry no meaning (``out0``...): e.g. SCRFD's
    score/bbox/kps tensors have last dims 1/4/10.

    Returns:
        ``{last_dim: [output indices in order]}`` for each of ``last_dims``.
    """
    groups: dict[int, list[int]] = {d: [] for d in last_dims}
    for i, out in enumerate(outputs):
        if out.ndim and out.shape[-1] in groups:
            groups[out.shape[-1]].append(i)
    return groups
