"""Detection files for evaluation: JSON lines and the devkit's ``comp4_det_<split>_<cls>.txt``.

JSON lines (``.jsonl``/``.json``), one detection per line, boxes in
:class:`~viewfinder.structures.Detections` coordinates (continuous, 0-based corners)::

    {"image_id": "000001", "label": "person", "score": 0.93, "box": [47.0, 239.0, 195.0, 371.0]}

(extra keys are ignored; ``viewfinder dpm detect --json`` writes this format).

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
from typing import NamedTuple

from viewfinder.errors import FormatError, InputFileError
from viewfinder.fileio import atomic_write_text

__all__ = ["DetectionRecord", "read_detections", "write_comp4", "write_jsonl"]

_COMP = re.compile(r"^comp\d+_det_(?P<split>[^_]+)_(?P<cls>.+)\.txt$")


class DetectionRecord(NamedTuple):
    """One detection: image, class, score and devkit box (1-based, inclusive)."""

    image_id: str
    label: str
    score: float
    box: tuple[float, float, float, float]


def _parse_json_line(line: str, where: str) -> DetectionRecord:
    try:
        obj = json.loads(line)
        box = [float(v) for v in obj["box"]]
        if len(box) != 4:
            raise ValueError(f"box has {len(box)} values, expected 4")
        return DetectionRecord(str(obj["image_id"]), str(obj["label"]), float(obj["score"]),
                               (box[0] + 1, box[1] + 1, box[2], box[3]))
    except (ValueError, KeyError, TypeError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise FormatError(f"{where}: not a detection record ({what})") from None


def _read_jsonl(path: Path) -> list[DetectionRecord]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            out.append(_parse_json_line(line, f"{path}:{n}"))
    return out


def _read_comp(path: Path, label: str) -> list[DetectionRecord]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
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


def _read_file(path: Path, default_label: str | None) -> list[DetectionRecord]:
    if path.stat().st_size == 0:
        raise FormatError(f"{path}: detections file is empty")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return _read_jsonl(path)
    m = _COMP.match(path.name)
    label = m.group("cls") if m else default_label
    if label is None:
        raise FormatError(f"{path}: cannot tell the class: expected a .jsonl file or a devkit "
                          f"file named comp4_det_<split>_<class>.txt")
    return _read_comp(path, label)


def read_detections(path: str | os.PathLike[str], label: str | None = None
                    ) -> list[DetectionRecord]:
    """Read detections from a JSON-lines file, a devkit file, or a directory of devkit files.

    Args:
        path: The file or directory.
        label: Class of a devkit-format file whose name does not say it.

    Returns:
        The records, in file order.

    Raises:
        InputFileError: the path does not exist.
        FormatError: an empty file, a malformed line (named with its line number), or a
            directory without ``comp*_det_*_<class>.txt`` files.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such detections file or directory")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if _COMP.match(f.name))
        if not files:
            raise FormatError(f"{p}: no devkit detection files (comp4_det_<split>_<class>.txt)")
        return [r for f in files for r in _read_file(f, None)]
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
