"""Evaluation of detectors: PASCAL VOC AP (devkit-exact), detection files, PR curves."""

from viewfinder.eval.voc import (
    MIN_OVERLAP,
    ClassResult,
    VOCEvaluator,
    VOCResult,
    evaluate_class,
    voc_ap,
)

__all__ = ["MIN_OVERLAP", "ClassResult", "VOCEvaluator", "VOCResult", "evaluate_class", "voc_ap"]
