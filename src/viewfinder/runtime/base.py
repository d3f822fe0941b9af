"""The backend interface every inference engine implements.

A :class:`Session` is one loaded model on one backend and device. Task packages
(faces, detect) talk to this interface only, never to onnxruntime or openvino
directly.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from viewfinder.errors import ShapeError

__all__ = ["Session", "TensorInfo", "match_outputs_by_shape"]


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
        precision: ``"f32"`` unless another precision was asked for.
    """

    path: str
    backend: str
    device: str
    precision: str = "f32"

    @property
    @abc.abstractmethod
    def inputs(self) -> list[TensorInfo]:
        """Model inputs, in graph order."""

    @property
    @abc.abstractmethod
    def outputs(self) -> list[TensorInfo]:
        """Model outputs, in graph order."""

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Run the model; a bare array feeds the single input. Returns outputs in order."""

    def describe(self) -> str:
        """One line: backend, device, precision and the file."""
        return f"{self.backend} on {self.device} ({self.precision}): {self.path}"

    def _feeds(self, feeds: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        if isinstance(feeds, np.ndarray):
            if len(self.inputs) != 1:
                names = ", ".join(i.name for i in self.inputs)
                raise ShapeError(f"{self.path}: model has inputs {names}; pass a dict")
            return {self.inputs[0].name: feeds}
        return dict(feeds)


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
