"""PASCAL VOC data sets: reader and writer of the VOCdevkit layout.

A VOC set is a directory (e.g. ``VOCdevkit/VOC2007``) with::

    Annotations/<id>.xml          one XML record per image
    JPEGImages/<id>.jpg           the images
    ImageSets/Main/<split>.txt    image ids of a split, one per line
    ImageSets/Main/<cls>_<split>.txt   "<id> 1|-1|0": the image holds the class /
                                       does not / only as a difficult object

Boxes are the devkit's: 1-based, inclusive pixel corners ``(xmin, ymin, xmax, ymax)``,
so a box's width is ``xmax - xmin + 1``. :func:`voc_to_xyxy` and :func:`xyxy_to_voc`
convert to and from :class:`viewfinder.structures.Detections`' continuous 0-based
corners.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import defusedxml
import defusedxml.ElementTree as defused_et
import numpy as np

from viewfinder.errors import DatasetError, FormatError, InputFileError, UnsafeXMLError
from viewfinder.fileio import atomic_write_text

__all__ = [
    "VOC_CLASSES",
    "Annotation",
    "VOCDataset",
    "VOCObject",
    "VOCWriter",
    "parse_annotation",
    "voc_to_xyxy",
    "xyxy_to_voc",
]

#: The 20 PASCAL VOC classes, in the devkit's order.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


class VOCObject(NamedTuple):
    """One annotated object: class name, devkit box (1-based xyxy), flags."""

    name: str
    box: tuple[float, float, float, float]
    difficult: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class Annotation:
    """The record of one image.

    Attributes:
        width: Image width in pixels.
        height: Image height in pixels.
        objects: The annotated objects (may be empty).
        filename: Image file name inside ``JPEGImages``.
        depth: Channels (3 for colour, 1 for gray).
    """

    width: int
    height: int
    objects: tuple[VOCObject, ...] = field(default=())
    filename: str = ""
    depth: int = 3

    def boxes(self, name: str | None = None) -> np.ndarray:
        """``(N, 4)`` float64 devkit boxes of the objects of class ``name`` (all if None)."""
        rows = [o.box for o in self.objects if name is None or o.name == name]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 4)

    def difficult(self, name: str | None = None) -> np.ndarray:
        """``(N,)`` bool difficult flags, aligned with :meth:`boxes`."""
        return np.array([o.difficult for o in self.objects if name is None or o.name == name],
                        dtype=bool)


def voc_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Devkit boxes (1-based, inclusive) → continuous 0-based xyxy: ``x1 - 1, y1 - 1, x2, y2``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, :2] -= 1
    return b


def xyxy_to_voc(boxes: np.ndarray) -> np.ndarray:
    """Continuous 0-based xyxy → devkit boxes: ``x1 + 1, y1 + 1, x2, y2``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, :2] += 1
    return b


def _text(node: ET.Element, tag: str, where: str, default: str | None = None) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        if default is not None:
            return default
        raise DatasetError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, where: str, default: str | None = None) -> float:
    value = _text(node, tag, where, default)
    try:
        return float(value)
    except ValueError:
        raise DatasetError(f"{where}: <{tag}> is {value!r}, expected a number") from None


def _finite(node: ET.Element, tag: str, where: str, default: str | None = None) -> float:
    value = _number(node, tag, where, default)
    if not math.isfinite(value):
        raise DatasetError(f"{where}: <{tag}> is {value}, expected a finite number")
    return value


def _integer(node: ET.Element, tag: str, where: str, default: str | None = None) -> int:
    return int(_finite(node, tag, where, default))


def _object(node: ET.Element, where: str) -> VOCObject:
    box = node.find("bndbox")
    if box is None:
        raise DatasetError(f"{where}: an <object> has no <bndbox>")
    corners = tuple(_finite(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
    return VOCObject(
        name=_text(node, "name", where),
        box=corners,  # type: ignore[arg-type]
        difficult=bool(_integer(node, "difficult", where, "0")),
        truncated=bool(_integer(node, "truncated", where, "0")),
    )


def _parse_xml(xml: str | bytes, where: str) -> ET.Element:
    """Parse untrusted XML with defusedxml: entity declarations and external references
    (DTDs, entities) are refused, so a 'billion laughs' or XXE file cannot expand or
    reach the file system or network."""
    try:
        return defused_et.fromstring(xml, forbid_dtd=False, forbid_entities=True,
                                     forbid_external=True)
    except defusedxml.EntitiesForbidden as exc:
        if exc.sysid or exc.pubid:
            ref = _one_line(str(exc.sysid or exc.pubid))
            ref = ref if len(ref) <= 80 else ref[:77] + "..."
            raise UnsafeXMLError(f"{where}: XML declares external entity {exc.name!r} "
                                 f"({ref}); external entities are refused "
                                 "(they read local files or URLs)") from None
        raise UnsafeXMLError(f"{where}: XML declares entity {exc.name!r}; entity "
                             "declarations are refused (entity-expansion bombs)") from None
    except (defusedxml.ExternalReferenceForbidden, defusedxml.DTDForbidden) as exc:
        raise UnsafeXMLError(f"{where}: XML refers to an external resource "
                             f"({_one_line(exc)}); external entities and DTDs are "
                             "refused") from None
    except defusedxml.DefusedXmlException as exc:
        raise UnsafeXMLError(f"{where}: unsafe XML refused ({_one_line(exc)})") from None
    except ET.ParseError as exc:
        raise DatasetError(f"{where}: malformed XML ({_one_line(exc)})") from None
    except (ValueError, LookupError, UnicodeError) as exc:
        raise DatasetError(f"{where}: malformed XML ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def parse_annotation(xml: str | bytes, where: str = "<annotation>") -> Annotation:
    """Parse one VOC XML record (through defusedxml: entities and external references
    are refused).

    Raises:
        DatasetError: malformed XML or a missing required field (named in the message).
        UnsafeXMLError: the XML declares entities or refers to external resources.
    """
    root = _parse_xml(xml, where)
    size = root.find("size")
    if size is None:
        raise DatasetError(f"{where}: missing <size>")
    return Annotation(
        width=_integer(size, "width", where),
        height=_integer(size, "height", where),
        depth=_integer(size, "depth", where, "3"),
        filename=_text(root, "filename", where, ""),
        objects=tuple(_object(o, where) for o in root.findall("object")),
    )


class VOCDataset:
    """A split of a VOC-layout data set.

    Args:
        root: The set's directory (holding ``Annotations``, ``JPEGImages``, ``ImageSets``),
            or a ``VOCdevkit`` directory together with ``year``.
        split: ``train``, ``val``, ``trainval``, ``test``...: ``ImageSets/Main/<split>.txt``.
        classes: Class names of interest; None = every name found in the annotations
            (read lazily; the 20 VOC classes when the set has them all).
        year: With a ``VOCdevkit`` root, selects ``VOC<year>``.

    Raises:
        DatasetError: the directory or the split file is missing, or the split is empty.
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "test",
                 classes: Sequence[str] | None = None, year: str | int | None = None) -> None:
        base = Path(root)
        if year is not None and (base / f"VOC{year}").is_dir():
            base = base / f"VOC{year}"
        if not base.is_dir():
            raise DatasetError(f"{base}: VOC directory does not exist")
        self.root = base
        self.split = split
        listing = base / "ImageSets" / "Main" / f"{split}.txt"
        if not listing.is_file():
            raise DatasetError(f"{base}: split {split!r} not found ({listing} is missing)")
        self.ids: list[str] = [line.split()[0] for line in
                               listing.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not self.ids:
            raise DatasetError(f"{listing}: split {split!r} lists no images")
        self._classes = tuple(classes) if classes is not None else None
        self._cache: dict[str, Annotation] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __repr__(self) -> str:
        return f"VOCDataset({str(self.root)!r}, split={self.split!r}, images={len(self)})"

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names (given, or found in this split's annotations)."""
        if self._classes is None:
            names = {o.name for i in self.ids for o in self.annotation(i).objects}
            ordered = [c for c in VOC_CLASSES if c in names]
            self._classes = tuple(ordered + sorted(names - set(ordered)))
        return self._classes

    def annotation(self, image_id: str) -> Annotation:
        """The parsed record of ``image_id`` (cached).

        Raises:
            DatasetError: the annotation file is missing or malformed (names the image id).
        """
        if image_id not in self._cache:
            path = self.root / "Annotations" / f"{image_id}.xml"
            if not path.is_file():
                raise DatasetError(f"image {image_id}: annotation file {path} is missing")
            self._cache[image_id] = parse_annotation(path.read_bytes(), f"image {image_id} "
                                                     f"({path})")
        return self._cache[image_id]

    def image_path(self, image_id: str) -> Path:
        """Path of the image file (the record's ``filename``, else ``<id>.jpg``)."""
        path = self.root / "Annotations" / f"{image_id}.xml"
        name = self.annotation(image_id).filename if path.is_file() else ""
        return self.root / "JPEGImages" / (name or f"{image_id}.jpg")

    def read_image(self, image_id: str) -> np.ndarray:
        """The image as ``(H, W, 3)`` uint8 RGB (gray files are replicated to 3 channels)."""
        from viewfinder.media.image import read_image

        return read_image(self.image_path(image_id), "rgb24")

    def class_labels(self, name: str) -> dict[str, int]:
        """``ImageSets/Main/<name>_<split>.txt`` as ``{id: 1 | -1 | 0}``.

        Raises:
            DatasetError: the file is missing.
        """
        path = self.root / "ImageSets" / "Main" / f"{name}_{self.split}.txt"
        if not path.is_file():
            raise DatasetError(f"{self.root}: class list {path.name} is missing")
        out = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                out[parts[0]] = int(parts[1])
        return out


def _annotation_xml(image_id: str, ann: Annotation, folder: str) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = ann.filename or f"{image_id}.jpg"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", ann.width), ("height", ann.height), ("depth", ann.depth)):
        ET.SubElement(size, tag).text = str(int(value))
    ET.SubElement(root, "segmented").text = "0"
    for obj in ann.objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = obj.name
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = str(int(obj.truncated))
        ET.SubElement(node, "difficult").text = str(int(obj.difficult))
        box = ET.SubElement(node, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj.box, strict=True):
            ET.SubElement(box, tag).text = f"{value:g}"
    ET.indent(root, "\t")
    return ET.tostring(root, encoding="unicode") + "\n"


class VOCWriter:
    """Builds a VOC-layout set (each file written atomically).

    Example::

        w = VOCWriter("out/VOC2007")
        w.add("000001", image_rgb, Annotation(500, 375, (VOCObject("dog", (48, 240, 195, 371)),)))
        w.write_split("trainval", ["000001"], classes=["dog"])
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._annotations: dict[str, Annotation] = {}

    def add(self, image_id: str, image: np.ndarray | str | os.PathLike[str] | None,
            annotation: Annotation) -> None:
        """Write ``Annotations/<id>.xml`` and (unless None) ``JPEGImages/<id>.jpg``.

        Args:
            image_id: The id (file stem); no path separators.
            image: ``(H, W, 3)`` RGB uint8 (or gray), an existing image file to copy, or None.
            annotation: The record; ``width``/``height`` must match the image.

        Raises:
            FormatError: a bad id, or the image size disagrees with the annotation.
        """
        if not image_id or "/" in image_id or "\\" in image_id or image_id.startswith("."):
            raise FormatError(f"image id {image_id!r}: expected a plain file stem")
        filename = annotation.filename or f"{image_id}.jpg"
        if image is not None:
            self._write_image(image_id, image, annotation, filename)
        ann = Annotation(annotation.width, annotation.height, tuple(annotation.objects),
                         filename, annotation.depth)
        atomic_write_text(self.root / "Annotations" / f"{image_id}.xml",
                          _annotation_xml(image_id, ann, self.root.name))
        self._annotations[image_id] = ann

    def _write_image(self, image_id: str, image: np.ndarray | str | os.PathLike[str],
                     ann: Annotation, filename: str) -> None:
        from viewfinder.fileio import atomic_write_bytes
        from viewfinder.media.image import encode_image

        target = self.root / "JPEGImages" / filename
        if isinstance(image, (str, os.PathLike)):
            src = Path(image)
            if not src.is_file():
                raise InputFileError(f"{src}: no such image file")
            atomic_write_bytes(target, src.read_bytes())
            return
        arr = np.asarray(image)
        if arr.shape[:2] != (ann.height, ann.width):
            raise FormatError(f"image {image_id}: size {arr.shape[1]}x{arr.shape[0]} does not "
                              f"match the annotation's {ann.width}x{ann.height}")
        fmt = "gray8" if arr.ndim == 2 else "rgb24"
        atomic_write_bytes(target, encode_image(arr, Path(filename).suffix or ".jpg", fmt))

    def write_split(self, split: str, ids: Sequence[str],
                    classes: Sequence[str] | None = None) -> None:
        """Write ``ImageSets/Main/<split>.txt`` and one ``<cls>_<split>.txt`` per class.

        Class lists use the devkit's labels: 1 (a non-difficult object), 0 (only difficult
        objects), -1 (none). Ids must have been added with :meth:`add` for class lists.
        """
        main = self.root / "ImageSets" / "Main"
        atomic_write_text(main / f"{split}.txt", "".join(f"{i}\n" for i in ids))
        for cls in classes or ():
            lines = []
            for i in ids:
                if i not in self._annotations:
                    raise DatasetError(f"image {i}: not added to this writer, cannot list "
                                       f"class {cls}")
                objs = [o for o in self._annotations[i].objects if o.name == cls]
                label = 1 if any(not o.difficult for o in objs) else (0 if objs else -1)
                lines.append(f"{i} {label:2d}\n")
            atomic_write_text(main / f"{cls}_{split}.txt", "".join(lines))
