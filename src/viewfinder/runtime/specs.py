"""Model specifications: what a model file is, where it comes from, what it eats.

A :class:`ModelSpec` is the single source of truth about a model the project uses:
its files (with upstream URL, sha256, size), licence, task, and the input spec
(size, layout, colour order, mean/std) that every caller must use to preprocess
images for it. The zoo (:mod:`viewfinder.runtime.zoo`) registers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from viewfinder.errors import ConfigError

if TYPE_CHECKING:  # preprocess imports this module: import it lazily at call time
    from viewfinder.runtime.preprocess import Preprocessor, SizeArg

__all__ = ["PRECISIONS", "PRECISION_ALIASES", "FileSpec", "InputSpec", "ModelSpec",
           "normalize_precision"]

_HEX = frozenset("0123456789abcdef")
#: media.resize's modes (without importing cv2), and Darknet's letterbox_image.
_INTERPOLATIONS = ("bilinear", "nearest", "area", "darknet")

#: The one precision vocabulary (CLI flags, TOML configs, the API).
PRECISIONS = ("f32", "fp16", "bf16", "int8")
#: Other spellings accepted for them (``fp32`` is what ``convert`` and its TOML used).
PRECISION_ALIASES = {"fp32": "f32", "float32": "f32", "float16": "fp16", "f16": "fp16"}


def normalize_precision(value: str, allowed: tuple[str, ...] = PRECISIONS,
                        what: str = "precision") -> str:
    """The canonical name of a precision (``fp32`` -> ``f32``).

    Raises:
        ConfigError: not one of ``allowed`` (nor an alias of one).
    """
    name = PRECISION_ALIASES.get(str(value).lower(), str(value).lower())
    if name not in allowed:
        raise ConfigError(f"{what} {value!r}: expected one of {', '.join(allowed)}")
    return name


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
            ``"stretch"`` (plain resize) or ``"crop"`` (a square crop around a box:
            centre = box centre, side = ``crop_margin`` x the box's longer side).
        dtype: Input tensor dtype name.
        center: Letterbox placement: True pads equally on both sides (Darknet/YOLO),
            False pads right and bottom only (SCRFD, YuNet).
        pad_value: Letterbox padding, in image pixel values (0..255, before mean/std).
        crop_margin: ``resize="crop"``: the crop's side over the box's longer side.
        interpolation: ``"bilinear"``, ``"nearest"`` or ``"area"``
            (:data:`viewfinder.media.resize.INTERPOLATIONS`), or ``"darknet"``: Darknet's
            ``letterbox_image`` (normalise, then its corner-aligned float resize, its
            truncating fit; see :func:`viewfinder.runtime.preprocess.darknet_resize`).
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
    center: bool = False
    pad_value: float = 0.0
    crop_margin: float = 1.5
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError(f"input {self.name}: layout {self.layout!r}, expected NCHW or NHWC")
        if self.color not in ("RGB", "BGR"):
            raise ConfigError(f"input {self.name}: colour {self.color!r}, expected RGB or BGR")
        if self.resize not in ("letterbox", "stretch", "crop"):
            raise ConfigError(f"input {self.name}: resize {self.resize!r} unknown")
        if any(s == 0 for s in self.std):
            raise ConfigError(f"input {self.name}: std must be non-zero, got {self.std}")
        if not 0 <= self.pad_value <= 255:
            raise ConfigError(f"input {self.name}: pad_value {self.pad_value}, expected 0..255")
        if self.interpolation not in _INTERPOLATIONS:
            raise ConfigError(f"input {self.name}: interpolation {self.interpolation!r}, "
                              f"expected one of {', '.join(_INTERPOLATIONS)}")
        if self.crop_margin <= 0:
            raise ConfigError(f"input {self.name}: crop_margin must be positive, "
                              f"got {self.crop_margin}")

    @property
    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` images are brought to: the fixed size or the default."""
        return self.size if self.size is not None else self.default_size

    def preprocess(self, size: SizeArg = None) -> Preprocessor:
        """The image -> input tensor transform this spec declares.

        Args:
            size: For dynamic models: ``(width, height)``, ``"auto"`` (the longer side
                scaled to ``max(default_size)``, both rounded up to ``multiple``) or None
                (``default_size``). Fixed models ignore None and refuse another size.

        Returns:
            A :class:`~viewfinder.runtime.preprocess.Preprocessor`:
            ``tensor, inverse = pre(image_bgr)`` (``pre(crop_source, box=...)`` for crops).
        """
        from viewfinder.runtime.preprocess import Preprocessor

        return Preprocessor(self, size)


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

    def preprocess(self, size: SizeArg = None) -> Preprocessor:
        """The preprocessing this model needs (torchvision's ``weights.transforms()``).

        ``tensor, inverse = spec.preprocess()(image_bgr)``: the input tensor and the
        transform mapping input coordinates (boxes, points) back to the image. See
        :meth:`InputSpec.preprocess` for ``size``.

        Raises:
            ConfigError: the model takes no image tensor (DPM: its detector builds a
                feature pyramid), or ``size`` does not fit the model.
        """
        if self.input is None:
            raise ConfigError(f"model {self.name}: takes no image tensor (its detector "
                              "does its own preprocessing)")
        return self.input.preprocess(size)

    @property
    def size(self) -> int | None:
        """Total size in bytes, ``None`` when any file's size is unknown."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s)
