"""VOC XML from the internet: entity expansion and external entities refused (issue 17)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from viewfinder.datasets.voc import VOCDataset, parse_annotation
from viewfinder.errors import DatasetError, UnsafeXMLError

_BODY = "<annotation><size><width>{w}</width><height>2</height></size></annotation>"
_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'
                     for i in range(2, 10)).replace("&lol1;", "&lol;")
           + "]>" + _BODY.format(w="&lol9;"))


@pytest.mark.parametrize(("xml", "message"), [
    (_LAUGHS, r"declares entity 'lol'; entity declarations are refused"),
    ('<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + _BODY.format(w="&x;"),
     r"external entity 'x' \(file:///etc/passwd\); external entities are refused"),
    ('<!DOCTYPE a [<!ENTITY x PUBLIC "-//X//Y" "http://127.0.0.1:9/x">]>' + _BODY.format(w="1"),
     r"external entity 'x'"),
    ('<!DOCTYPE a [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>' + _BODY.format(w="1"),
     r"external entity 'p'"),
    ('<!DOCTYPE a [<!ENTITY w "5">]>' + _BODY.format(w="&w;"), r"declares entity 'w'"),
])
def test_entities_are_refused(xml: str, message: str) -> None:
    with pytest.raises(UnsafeXMLError, match=message) as info:
        parse_annotation(xml.encode(), "x.xml")
    assert str(info.value).startswith("x.xml: ") and "\n" not in str(info.value)
    assert isinstance(info.value, DatasetError)  # callers catching DatasetError still do


@pytest.mark.parametrize(("value", "message"), [
    ("nan", "<width> is nan, expected a finite number"),
    ("inf", "<width> is inf, expected a finite number"),
    ("1e999", "<width> is inf, expected a finite number"),
    ("ten", "<width> is 'ten', expected a number"),
])
def test_numbers_that_are_not_finite(value: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_annotation(_BODY.format(w=value), "x.xml")


@pytest.mark.parametrize(("xml", "message"), [
    (b"<annotation><size>", "malformed XML"),
    (b'<?xml version="1.0" encoding="bogus"?><a/>', r"malformed XML \(unknown encoding"),
    (b"\xff\xfe<\x00a\x00", "malformed XML"),
])
def test_malformed(xml: bytes, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_annotation(xml, "x.xml")


def test_external_entity_with_a_multiline_system_id_gives_one_line() -> None:
    """Found by the voc_xml target (atheris): the system id ran over many lines into the
    message, which must be one line."""
    xml = ('<!DOCTYPE annotation [<!ENTITY % p SYSTEM "http://127.0.0.<annotation>\n\t<folder>'
           + "x" * 200 + '</folder>">]>' + _BODY.format(w="1"))
    with pytest.raises(UnsafeXMLError, match=r"external entity 'p' \(http://127\.0\.0\.<annotation>"
                                             r" <folder>x+\.\.\.\)") as info:
        parse_annotation(xml.encode(), "x.xml")
    assert "\n" not in str(info.value) and len(str(info.value)) < 250


def test_character_references_and_plain_doctype_still_parse() -> None:
    ann = parse_annotation(b'<!DOCTYPE annotation><annotation><filename>a&amp;b&#x41;.jpg'
                           b'</filename><size><width>3</width><height>2</height></size>'
                           b'</annotation>')
    assert (ann.filename, ann.width, ann.height) == ("a&bA.jpg", 3, 2)


def test_real_annotations_parse_as_with_elementtree(shared: Path) -> None:
    root = shared / "data/coco256-voc"
    ds = VOCDataset(root, "test")
    for image_id in ds.ids[:20]:
        xml = (root / "Annotations" / f"{image_id}.xml").read_bytes()
        ann = ds.annotation(image_id)
        plain = ET.fromstring(xml)
        assert ann.width == int(plain.findtext("size/width"))
        boxes = [[float(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")]
                 for o in plain.findall("object")]
        assert ann.boxes().tolist() == boxes
