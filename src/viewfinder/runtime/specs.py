"""Model specifications: what a model file is, where it comes from, what it eats.

A :class:`ModelSpec` is the single source of truth about a model the project uses:
its files (with upstream URL, sha256, size), licence, task, and the input spec
(size, layout, colour order, mean/std) that every caller must use to preprocess
images for it. The zoo (:mod:`viewfinder.runtime.zoo`) registers them.
"""

from __future__ import annotations

from dataclasses import dataclass

from viewfinder.errors import ConfigError

__all__ = ["FileSpec", "InputSpec", "ModelSpec"]

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class FileSpec:
    """One file of a model.

    Attributes:
        name: File name as the model directory holds it (``scrfd_500m_bnkps.onnx``).
        subdir: Directory relative to a models root (``face``, ``detect/yolov3-tiny``).
        url: Upstream download URL (a file, or an archive when ``member`` is set);
            ``None`` when no public location is known.
        sha256: Accepted digests. The first is the copy viewfinder is tested with;
            further ones are upstream copies known to hold the same network and I/O.
            Empty when no digest is published (the file is then not verifiable).
        size: Size in bytes of the first digest's file, ``None`` if unknown.
        member: Path of the file inside the archive at ``url`` (tar or zip).
    """

    name: str
    subdir: str
    url: str | None
    sha256: tuple[str, ...] = ()
    size: int | None = None
    member: str | None = None

    def __post_init__(self) -> None:
        for digest in self.sha256:
            if len(digest) != 64 or not set(digest) <= _HEX:
                raise ConfigError(f"{self.name}: sha256 {digest!r} is not 64 lowercase hex digits")
        if self.size is not None and self.size <= 0:
            raise ConfigError(f"{self.name}: size must be positive, got {self.size}")

    @property
    def relpath(self) -> str:
        """``subdir/name``: where the file lives under a models root."""
        return f"{self.subdir}/{self.name}" if self.subdir else self.name


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes the model's input tensor.

    ``tensor = (image_in_colour_order - mean) / std``, laid out as ``layout``.

    Attributes:
        name: Input tensor name.
        size: ``(width, height)`` the model is fixed to, or ``None`` when H and W
            are dynamic (then ``default_size`` is used when none is given).
        default_size: ``(width, height)`` to use for dynamic models.
        layout: ``"NCHW"`` or ``"NHWC"``.
        color: ``"RGB"`` or ``"BGR"``: channel order the model expects.
        mean: Per-channel mean, in the model's channel order, on the 0..255 scale.
        std: Per-channel std, same convention.
        multiple: H and W must be multiples of this (dynamic models).
        resize: ``"letterbox"`` (keep aspect, pad bottom/right or centred),
            ``"stretch"`` (plain resize) or ``"crop"`` (the caller crops; resize only).
        dtype: Input tensor dtype name.
    """

    name: str
    size: tuple[int, int] | None
    default_size: tuple[int, int] = (640, 640)
    layout: str = "NCHW"
    color: str = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    multiple: int = 1
    resize: str = "letterbox"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError(f"input {self.name}: layout {self.layout!r}, expected NCHW or NHWC")
        if self.color not in ("RGB", "BGR"):
            raise ConfigError(f"input {self.name}: colour {self.color!r}, expected RGB or BGR")
        if self.resize not in ("letterbox", "stretch", "crop"):
            raise ConfigError(f"input {self.name}: resize {self.resize!r} unknown")
        if any(s == 0 for s in self.std):
            raise ConfigError(f"input {self.name}: std must be non-zero, got {self.std}")

    @property
    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` images are brought to: the fixed size or the default."""
        return self.size if self.size is not None else self.default_size


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
        name: Zoo name (``scrfd_500m``, ``dpm/VOC2007_person``).
        task: ``face-detection``, ``face-landmarks``, ``detection`` or ``dpm``.
        files: The model's files; the first is the primary one (``.onnx``, ``.cfg``, ``.mat``).
        licence: Licence of the weights, in a few words.
        description: One line.
        input: Image preprocessing for neural models; ``None`` for non-tensor models (DPM).
        output_layout: How to read the outputs, in a few words.
        notes: Anything a user must know (differences from upstream, caveats).
    """

    name: str
    task: str
    files: tuple[FileSpec, ...]
    licence: str
    description: str
    input: InputSpec | None = None
    output_layout: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if not self.files:
            raise ConfigError(f"model {self.name}: a spec needs at least one file")

    @property
    def primary(self) -> FileSpec:
        """The main file (the ONNX graph, the Darknet cfg, the DPM struct)."""
        return self.files[0]

    @property
    def size(self) -> int | None:
        """Total size in bytes, ``None`` when any file's size is unknown."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s)
