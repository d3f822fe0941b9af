"""Fuzz targets of text formats: VOC XML annotations, detection files, TOML conversion configs."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from fuzz_core import (
    GENERIC,
    NUMBERS,
    Chooser,
    PropertyViolation,
    Target,
    line_shuffle_op,
    lines_op,
)

# --------------------------------------------------------------------------- VOC XML
_VOC = """<annotation>
\t<folder>VOC2007</folder>
\t<filename>000001.jpg</filename>
\t<size><width>353</width><height>500</height><depth>3</depth></size>
\t<object><name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
\t\t<bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox></object>
\t<object><name>person</name><truncated>0</truncated><difficult>1</difficult>
\t\t<bndbox><xmin>8</xmin><ymin>12</ymin><xmax>352</xmax><ymax>498</ymax></bndbox></object>
</annotation>
"""
_DTDS = [
    '<!DOCTYPE annotation [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>',
    '<!DOCTYPE annotation [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE annotation SYSTEM "http://127.0.0.1:9/voc.dtd">',
    '<!DOCTYPE annotation [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>',
    '<!DOCTYPE annotation [<!ELEMENT annotation ANY>]>',
    '<?xml version="1.0" encoding="utf-16"?>', '<?xml version="1.0" encoding="latin-1"?>',
    '<?xml version="1.0" encoding="bogus"?>', '<?xml-stylesheet href="x"?>',
]
_ENTITY_REFS = ["&a;", "&b;", "&x;", "&amp;", "&#0;", "&#x41;", "&#1114112;", "&lt;", "&undef;"]


def voc_seeds(shared: Path | None) -> list[bytes]:
    seeds = [_VOC.encode(), b"<annotation><size><width>1</width><height>1</height></size>"
             b"</annotation>"]
    if shared is not None:
        ann = shared / "data/coco256-voc/Annotations"
        if ann.is_dir():
            seeds += [p.read_bytes() for p in sorted(ann.glob("*.xml"))[:6]]
    return seeds


def _texts(data: bytes) -> list[tuple[int, int]]:
    """Spans of element texts (between ``>`` and ``<``), where the values live."""
    return [m.span(1) for m in re.finditer(rb">([^<>]*)<", data)][:400]


def xml_value_op(ch: Chooser, data: bytes) -> bytes:
    spans = _texts(data)
    if not spans:
        return data
    a, b = ch.choice(spans)
    return data[:a] + ch.choice(NUMBERS + _ENTITY_REFS + ["dog", "<", "]]>"]).encode() + data[b:]


def xml_element_op(ch: Chooser, data: bytes) -> bytes:
    """Drop, duplicate or rename one element (found by its tags)."""
    tags = list(re.finditer(rb"<(\w+)>.*?</\1>", data, re.S))[:400]
    if not tags:
        return data
    m = ch.choice(tags)
    a, b = m.span()
    how = ch.int(0, 3)
    if how == 0:
        return data[:a] + data[b:]
    if how == 1:
        return data[:b] + data[a:b] + data[b:]
    if how == 2:  # nest it deeply
        depth = ch.int(1, 200)
        return data[:a] + b"<o>" * depth + data[a:b] + b"</o>" * depth + data[b:]
    name = ch.choice([b"size", b"object", b"bndbox", b"name", b"x", b"width"])
    tag = m.group(1)
    return data[:a] + data[a:b].replace(b"<" + tag + b">", b"<" + name + b">", 1).replace(
        b"</" + tag + b">", b"</" + name + b">", 1) + data[b:]


def xml_dtd_op(ch: Chooser, data: bytes) -> bytes:
    """Put a DTD, an entity (internal, external, parameter) or a declaration in front."""
    body = re.sub(rb"^<\?xml[^>]*\?>", b"", data.lstrip())
    return ch.choice(_DTDS).encode() + body


def voc_run(data: bytes, workdir: Path) -> None:
    from viewfinder.datasets.voc import parse_annotation

    ann = parse_annotation(data, "fuzz.xml")
    if not all(isinstance(v, int) for v in (ann.width, ann.height, ann.depth)):
        raise PropertyViolation(f"size fields are not ints: {ann}")
    boxes = ann.boxes()
    if boxes.shape != (len(ann.objects), 4) or not np.isfinite(boxes).all():
        raise PropertyViolation(f"boxes {boxes.shape} / not finite for {len(ann.objects)}")
    ann.difficult()


VOC_XML = Target(
    "voc_xml", voc_seeds, voc_run,
    ops=[xml_value_op] * 4 + [xml_element_op] * 2 + [xml_dtd_op] + GENERIC,
    modules=("viewfinder.datasets.voc",),
)


# --------------------------------------------------------------------------- detection files
_DET_RECORDS = [
    {"image_id": "000001", "label": "person", "score": 0.93, "box": [47.0, 239.0, 195.0, 371.0]},
    {"image_id": "000002", "label": "dog", "score": 0.1, "box": [0, 0, 10, 10], "extra": 1},
]
_JSON_VALUES = [None, True, 0, -1, 1e308, 1.5, "x", "", [], [1, 2, 3], [1, 2, 3, 4, 5], {},
                {"a": 1}, [None, 1, 2, 3], ["1", "2", "3", "4"], 2 ** 70, [[1], 2, 3, 4]]


def det_seeds(shared: Path | None) -> list[bytes]:
    jsonl = "".join(json.dumps(r) + "\n" for r in _DET_RECORDS).encode()
    comp = b"000001 0.930000 48.0 240.0 195.0 371.0\n000002 0.100000 1.0 1.0 10.0 10.0\n"
    return [b"J" + jsonl, b"C" + comp, b"D" + comp]


def _json_value_op(ch: Chooser, data: bytes) -> bytes:
    """JSON lines: set one key of one record to another JSON value (or remove it)."""
    if not data.startswith(b"J"):
        return data
    lines = data[1:].split(b"\n")
    i = ch.int(0, max(0, len(lines) - 1))
    try:
        obj = json.loads(lines[i])
    except ValueError:
        return data
    if not isinstance(obj, dict):
        return data
    key = ch.choice(["image_id", "label", "score", "box", "box", "other"])
    if ch.int(0, 4) == 0:
        obj.pop(key, None)
    else:
        obj[key] = ch.choice(_JSON_VALUES)
    lines[i] = json.dumps(obj).encode()
    return b"J" + b"\n".join(lines)


def _json_raw_op(ch: Chooser, data: bytes) -> bytes:
    """JSON lines: a line that is valid JSON but no record, or deep, or not UTF-8."""
    line = ch.choice([b"[]", b"1", b'"x"', b"null", b"[" * 100000, b'{"box": ' + b"[" * 5000,
                      b"\xff\xfe{}", b'{"image_id": "\xe9"}', b"NaN", b"{" + b'"a":{' * 3000,
                      b'{"image_id":1,"label":2,"score":"inf","box":[1,2,3,4]}'])
    return data + b"\n" + line


def _comp_field_op(ch: Chooser, data: bytes) -> bytes:
    lines = data[1:].split(b"\n")
    i = ch.int(0, max(0, len(lines) - 1))
    parts = lines[i].split()
    if not parts:
        return data
    j = ch.int(0, len(parts))
    value = ch.choice(NUMBERS + ["\xe9", "a b", "\x00"]).encode("utf-8", "surrogateescape")
    parts[j:j + 1] = [value] if j < len(parts) else [value]
    lines[i] = b" ".join(parts)
    return data[:1] + b"\n".join(lines)


def det_run(data: bytes, workdir: Path) -> None:
    """First byte: J = .jsonl file, C = comp4_det_test_person.txt, D = a directory of those."""
    from viewfinder.eval.detfile import read_detections

    kind, body = data[:1], data[1:]
    if kind == b"J":
        path = workdir / "dets.jsonl"
    elif kind == b"D":
        (workdir / "dets").mkdir()
        path = workdir / "dets"
        (path / "comp4_det_test_person.txt").write_bytes(body)
        (path / "comp4_det_test_dog.txt").write_bytes(body[::-1])
    else:
        path = workdir / "comp4_det_test_person.txt"
    if kind != b"D":
        path.write_bytes(body)
    for r in read_detections(path):
        if not (isinstance(r.score, float) and len(r.box) == 4 and isinstance(r.image_id, str)):
            raise PropertyViolation(f"bad record {r}")


DETFILE = Target(
    "detfile", det_seeds, det_run,
    ops=[_json_value_op] * 4 + [_json_raw_op, _comp_field_op, _comp_field_op, line_shuffle_op]
    + GENERIC,
    modules=("viewfinder.eval.detfile",),
)


# --------------------------------------------------------------------------- TOML configs
_TOML = """[preprocess]
input = "nv12"
width = 640
height = 480
color_matrix = "bt601"
color_range = "limited"
model_channels = "rgb"
mean = [127.5, 127.5, 127.5]
std = [128.0, 128.0, 128.0]
crop = [0, 0, 640, 480]
resize = false

[shape]
batch = "dynamic"
size = [640, 480]

[precision]
dtype = "int8"
calibration = "calib/"
calibration_limit = 32
quant_format = "qoperator"
per_channel = true
keep_edges_float = true
calibrate_method = "minmax"

[graph]
optimize = true
prelu_to_relu = 0.001
"""
_TOML_VALUES = ["0", "-1", "1", "4", "1e400", "-1e400", "nan", "inf", "-inf", "0.0", "1.5",
                "true", "false", '""', '"x"', '"dynamic"', '"nv12"', '"rgb"', '"f32"', '"fp32"',
                '"int8"', '"fp16"', "[]", "[0]", "[1, 2]", "[0, 0, 0]", "[1, 2, 3, 4]",
                "[1, 2, 3, 4, 5]", '["a", "b", "c"]', "[inf, 1]", "[nan, nan, nan]", "{}",
                "{a = 1}", "[[1], [2], [3]]", "1979-05-27", "99999999999999999999",
                "9223372036854775807", "-9223372036854775808", '"../../etc"', "[0, 0]"]


def toml_seeds(shared: Path | None) -> list[bytes]:
    small = '[preprocess]\ninput = "rgb"\nscale = 0.0078125\n[shape]\nbatch = 4\n'
    return [_TOML.encode(), small.encode(), b'[precision]\ndtype = "fp16"\n', b""]


def _toml_key_op(ch: Chooser, data: bytes) -> bytes:
    """Add a known key of another section, an unknown key, or a new section."""
    line = ch.choice(["scale = 0", "scale = [0, 1, 2]", "scale = 1e400", "std = 0",
                      "mean = 1", "crop = 5", "size = 3", "batch = 0", "dtype = 1",
                      "unknown = 1", "[preprocess]", "[shape]", "[bogus]", "[[shape]]",
                      "shape = 1", "a.b = 1", "input_name = 3", "calibration = 7",
                      "calibration_limit = -5", "prelu_to_relu = -1", "verify = true"])
    lines = data.split(b"\n")
    lines.insert(ch.int(0, len(lines)), line.encode())
    return b"\n".join(lines)


def toml_run(data: bytes, workdir: Path) -> None:
    from viewfinder.runtime.convert.config import load_config

    path = workdir / "convert.toml"
    path.write_bytes(data)
    opts = load_config(path)
    if opts.size is not None and not all(isinstance(v, int) and v > 0 for v in opts.size):
        raise PropertyViolation(f"size {opts.size}")
    spec = opts.preprocess
    if spec is not None and not all(math.isfinite(float(v)) for v in (*spec.mean, *spec.std)):
        raise PropertyViolation(f"mean/std not finite: {spec}")


CONVERT_TOML = Target(
    "convert_toml", toml_seeds, toml_run,
    ops=[lines_op(_TOML_VALUES)] * 5 + [_toml_key_op] * 2 + [line_shuffle_op] + GENERIC,
    modules=("viewfinder.runtime.convert.config", "viewfinder.runtime.convert.spec"),
)
