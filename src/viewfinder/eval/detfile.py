"""Detection files for evaluation: JSON lines, JSON arrays and the devkit's comp4 files.

JSON lines (``.jsonl``/``.json``/``.ndjson``), boxes in
:class:`~viewfinder.structures.Detections` coordinates (continuous, 0-based corners).
Two record kinds, which may be mixed:

* one record per image or frame (what ``viewfinder detect`` and ``viewfinder dpm
  detect`` write); an empty ``detections`` list still counts the image as covered::

    {"source": "imgs/", "path": "imgs/000001.jpg", "image_id": "000001", "frame": null,
     "time": null, "width": 353, "height": 500,
     "detections": [{"box": [47.0, 239.0, 195.0, 371.0], "score": 0.93,
                     "label": "person", "class_id": 0}]}

* one detection per line::

    {"image_id": "000001", "label": "person", "score": 0.93, "box": [47.0, 239.0, 195.0, 371.0]}

A ``.json`` file may also hold a JSON array of such records. Extra keys are ignored.
A detection must carry its class name (``label``): a missing or empty one, or a label
that is only the class id (a detector without class names), is an error.

Devkit files (``comp4_det_test_person.txt``), one per class, boxes in devkit
coordinates (1-based, inclusive)::

    000001 0.93 48.0 240.0 195.0 371.0

A path may be one file of either kind or a directory of devkit files.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from viewfinder.errors import FormatError, InputFileError
from viewfinder.fileio import atomic_write_text

__all__ = ["DetectionFile", "DetectionRecord", "parse_detection_text", "read_detection_file",
           "read_detections", "write_comp4", "write_jsonl"]

_COMP = re.compile(r"^comp\d+_det_(?P<split>[^_]+)_(?P<cls>.+)\.txt$")


class DetectionRecord(NamedTuple):
    """One detection: image, class, score and devkit box (1-based, inclusive)."""

    image_id: str
    label: str
    score: float
    box: tuple[float, float, float, float]


class DetectionFile(NamedTuple):
    """What a detections file holds.

    Attributes:
        records: The detections, in file order.
        images: Image ids the file covers: those of per-image records (empty ones
            included) and of every detection.
    """

    records: list[DetectionRecord]
    images: frozenset[str]


def _label(det: dict[str, Any], where: str) -> str:
    label = det.get("label")
    if label is None or not str(label).strip():
        raise FormatError(f"{where}: no class name ('label'); eval scores classes by "
                          "name: give the detector its class names")
    label = str(label)
    cid = det.get("class_id")
    if label.isdigit() and cid is not None and str(cid) == label:
        raise FormatError(f"{where}: labelled only by its class id {label} ('label' is "
                          "no class name); give the detector its class names")
    return label


def _detection(det: Any, image_id: str, where: str) -> DetectionRecord:
    if not isinstance(det, dict):
        raise FormatError(f"{where}: not a detection record (expected an object, got "
                          f"{type(det).__name__})")
    label = _label(det, where)
    try:
        box = [float(v) for v in det["box"]]
        if len(box) != 4:
            raise ValueError(f"box has {len(box)} values, expected 4")
        score = float(det["score"])
    except (ValueError, KeyError, TypeError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise FormatError(f"{where}: not a detection record ({what})") from None
    return DetectionRecord(image_id, label, score, (box[0] + 1, box[1] + 1, box[2], box[3]))


def _image_id(obj: dict[str, Any], where: str) -> str:
    image_id = obj.get("image_id")
    if image_id is None or not str(image_id):
        path = obj.get("path")
        if not path:
            raise FormatError(f"{where}: image record without 'image_id' or 'path'")
        return Path(str(path)).stem
    return str(image_id)


def _parse_record(obj: Any, where: str) -> tuple[str | None, list[DetectionRecord]]:
    """``(image id of a per-image record or None, its detections)``."""
    if not isinstance(obj, dict):
        raise FormatError(f"{where}: not a detection record (expected an object)")
    if "detections" not in obj:
        if "image_id" not in obj:
            raise FormatError(f"{where}: not a detection record (missing key 'image_id')")
        return None, [_detection(obj, str(obj["image_id"]), where)]
    dets = obj["detections"]
    if not isinstance(dets, list):
        raise FormatError(f"{where}: 'detections' must be a list, got {type(dets).__name__}")
    image_id = _image_id(obj, where)
    return image_id, [_detection(d, image_id, f"{where}: detection {k}")
                      for k, d in enumerate(dets)]


def _read_json(path: Path) -> DetectionFile:
    return parse_detection_text(path.read_text(encoding="utf-8"), str(path))


def parse_detection_text(text: str, where: str = "<stdin>") -> DetectionFile:
    """Detections from JSON-lines text (or a JSON array), e.g. read from a pipe.

    Args:
        text: The content.
        where: What to call it in error messages (a file name, ``<stdin>``).

    Raises:
        FormatError: no records at all, a malformed record (named with its line), or a
            detection without a class name.
    """
    if not text.strip():
        raise FormatError(f"{where}: no detection records (empty input)")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise FormatError(f"{where}: not a JSON array of detection records ({exc})") from None
        except RecursionError:
            raise FormatError(f"{where}: not a JSON array of detection records (nested too "
                              "deeply)") from None
        entries = [(f"{where}: item {k}", obj) for k, obj in enumerate(items)]
    else:
        entries = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    entries.append((f"{where}:{n}", json.loads(line)))
                except ValueError as exc:
                    raise FormatError(f"{where}:{n}: not a detection record ({exc})") from None
                except RecursionError:
                    raise FormatError(f"{where}:{n}: not a detection record (JSON nested too "
                                      "deeply)") from None
    records: list[DetectionRecord] = []
    images: set[str] = set()
    for loc, obj in entries:
        image_id, dets = _parse_record(obj, loc)
        if image_id is not None:
            images.add(image_id)
        records += dets
    return DetectionFile(records, frozenset(images | {r.image_id for r in records}))


def _read_comp(path: Path, label: str) -> list[DetectionRecord]:
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not a UTF-8 text file (byte {exc.start}: "
                          f"{exc.reason})") from None
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise FormatError(f"{path}:{n}: expected '<image_id> <score> <x1> <y1> <x2> <y2>', "
                              f"got {len(parts)} fields")
        try:
            vals = [float(v) for v in parts[1:]]
        except ValueError:
            raise FormatError(f"{path}:{n}: score and box must be numbers") from None
        out.append(DetectionRecord(parts[0], label, vals[0], tuple(vals[1:])))  # type: ignore[arg-type]
    return out


def _read_file(path: Path, default_label: str | None) -> DetectionFile:
    if path.stat().st_size == 0:
        raise FormatError(f"{path}: detections file is empty")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        try:
            return _read_json(path)
        except UnicodeDecodeError:
            raise FormatError(f"{path}: not a UTF-8 text file") from None
    m = _COMP.match(path.name)
    label = m.group("cls") if m else default_label
    if label is None:
        raise FormatError(f"{path}: cannot tell the class: expected a .jsonl file or a devkit "
                          f"file named comp4_det_<split>_<class>.txt")
    records = _read_comp(path, label)
    return DetectionFile(records, frozenset(r.image_id for r in records))


def read_detections(path: str | os.PathLike[str], label: str | None = None
                    ) -> list[DetectionRecord]:
    """The detections of a file or directory (see :func:`read_detection_file`)."""
    return read_detection_file(path, label).records


def read_detection_file(path: str | os.PathLike[str], label: str | None = None
                        ) -> DetectionFile:
    """Read detections from a JSON-lines file, a devkit file, or a directory of devkit files.

    Args:
        path: The file or directory.
        label: Class of a devkit-format file whose name does not say it.

    Returns:
        The records, in file order, and the image ids the file covers.

    Raises:
        InputFileError: the path does not exist.
        FormatError: an empty file, a malformed line (named with its line number), a
            detection without a class name, or a directory without
            ``comp*_det_*_<class>.txt`` files.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such detections file or directory")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if _COMP.match(f.name))
        if not files:
            raise FormatError(f"{p}: no devkit detection files (comp4_det_<split>_<class>.txt)")
        parts = [_read_file(f, None) for f in files]
        return DetectionFile([r for part in parts for r in part.records],
                             frozenset().union(*(part.images for part in parts)))
    return _read_file(p, label)


def write_jsonl(path: str | os.PathLike[str], records: Iterable[DetectionRecord]) -> Path:
    """Write records as JSON lines (boxes converted to 0-based continuous corners)."""
    lines = []
    for r in records:
        box = [round(r.box[0] - 1, 3), round(r.box[1] - 1, 3), round(r.box[2], 3),
               round(r.box[3], 3)]
        lines.append(json.dumps({"image_id": r.image_id, "label": r.label,
                                 "score": round(r.score, 6), "box": box}) + "\n")
    return atomic_write_text(path, "".join(lines))


def write_comp4(directory: str | os.PathLike[str], split: str,
                records: Iterable[DetectionRecord]) -> list[Path]:
    """Write one devkit file ``comp4_det_<split>_<class>.txt`` per class; returns the paths."""
    d = Path(directory)
    if not d.is_dir():
        raise InputFileError(f"{d}: output directory does not exist")
    by_class: dict[str, list[str]] = {}
    for r in records:
        by_class.setdefault(r.label, []).append(
            f"{r.image_id} {r.score:.6f} {r.box[0]:.1f} {r.box[1]:.1f} {r.box[2]:.1f} "
            f"{r.box[3]:.1f}\n")
    return [atomic_write_text(d / f"comp4_det_{split}_{cls}.txt", "".join(lines))
            for cls, lines in sorted(by_class.items())]
