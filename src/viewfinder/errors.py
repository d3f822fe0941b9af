"""The one error hierarchy of viewfinder.

Every error a user can cause derives from :class:`ViewfinderError`. Messages are one
line, name the input, and say what was expected and what was found. The CLI turns
any :class:`ViewfinderError` into that line on stderr and exit code 2.

This module is a leaf: it imports nothing from viewfinder, so every layer
(``media`` included) may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BackendError",
    "ConfigError",
    "CorruptDataError",
    "DatasetError",
    "DecodeError",
    "EncodeError",
    "FormatError",
    "InputFileError",
    "MissingDependencyError",
    "ModelError",
    "ModelNotFoundError",
    "PixelLimitError",
    "ProviderError",
    "ShapeError",
    "SizeError",
    "UnsafeXMLError",
    "ViewfinderError",
    "check_shape",
    "require",
]


class ViewfinderError(Exception):
    """Base class of every error viewfinder raises for bad input or setup."""


class InputFileError(ViewfinderError):
    """A file is missing, unreadable, or cannot be written."""


class FormatError(ViewfinderError):
    """A file or value is of the wrong kind (not an image, unknown pixel format...)."""


class DecodeError(ViewfinderError):
    """Encoded data (JPEG, video packet...) could not be decoded."""


class CorruptDataError(DecodeError):
    """Data is truncated or corrupt part-way through."""


class EncodeError(ViewfinderError):
    """Encoding or writing an output failed."""


class SizeError(ViewfinderError):
    """A size is zero, odd where it must be even, absurd, or does not match the data."""


class ShapeError(ViewfinderError):
    """An array has the wrong shape (expected versus actual is in the message)."""


class ConfigError(ViewfinderError):
    """A configuration value or file is invalid."""


class DatasetError(ViewfinderError):
    """A data set is empty, malformed, or lacks a required file."""


class ModelError(ViewfinderError):
    """A model file is invalid or of an unexpected kind."""


class ModelNotFoundError(ModelError):
    """A model is neither in the local directories nor downloadable."""


class BackendError(ViewfinderError):
    """An inference backend failed to load or run a model."""


class ProviderError(BackendError):
    """A requested execution provider or device is not available."""


class MissingDependencyError(ViewfinderError, ImportError):
    """An optional dependency is not installed; the message names the extra."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{package} is needed{what} but is not installed: pip install 'viewfinder[{extra}]'"
        )
        self.package = package
        self.extra = extra


def require(condition: bool, error: type[ViewfinderError], message: str) -> None:
    """Raise ``error(message)`` unless ``condition`` holds (``assert`` for user input)."""
    if not condition:
        raise error(message)


def _dims_match(actual: Sequence[int], expected: Sequence[int | str | None]) -> bool:
    if len(actual) != len(expected):
        return False
    bound: dict[str, int] = {}
    for got, want in zip(actual, expected, strict=True):
        if want is None or want == "*":
            continue
        if isinstance(want, str):
            if bound.setdefault(want, got) != got:
                return False
        elif got != want:
            return False
    return True


def check_shape(array: Any, expected: Sequence[int | str | None], name: str) -> None:
    """Check an array's shape against a pattern, kornia ``KORNIA_CHECK_SHAPE`` style.

    Args:
        array: Anything with a ``shape``.
        expected: One entry per dimension: an int (exact), ``None`` or ``"*"`` (any),
            or a name such as ``"N"`` (any, but equal wherever the name repeats).
        name: What the array is, for the message.

    Raises:
        ShapeError: ``"<name>: expected shape (N, 4), got (3, 5)"``.
    """
    shape = tuple(getattr(array, "shape", ()))
    if not _dims_match(shape, expected):
        want = ", ".join("*" if e is None else str(e) for e in expected)
        raise ShapeError(f"{name}: expected shape ({want}), got {shape}")


class PixelLimitError(SizeError):
    """A picture claims more pixels than the configured limit (refused before decoding).

    ``width``, ``height``, ``pixels`` and ``limit`` are kept so a service can answer
    413 Payload Too Large with them.
    """

    def __init__(self, message: str, width: int = 0, height: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.width = width
        self.height = height
        self.pixels = width * height
        self.limit = limit


class UnsafeXMLError(DatasetError):
    """An XML document uses entity declarations or external references (refused)."""


class ServiceError(ViewfinderError):
    """A viewfinder service refused a request or could not be reached (the client).

    ``status`` is the HTTP status (0 when there was no answer) and ``retry_after`` the
    seconds a 503 asked to wait (None otherwise); the message is the service's one line.
    """

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class WorkerError(ViewfinderError):
    """A worker process (or Ray actor) could not start, or failed in a way that is not
    an input's fault (:mod:`viewfinder.scale`)."""
