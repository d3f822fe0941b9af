"""Data sets in standard layouts (PASCAL VOC): readers and writers."""

from viewfinder.datasets.voc import (
    VOC_CLASSES,
    Annotation,
    VOCDataset,
    VOCObject,
    VOCWriter,
    parse_annotation,
    voc_to_xyxy,
    xyxy_to_voc,
)

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
