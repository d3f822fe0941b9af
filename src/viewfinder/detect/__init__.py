"""Class-labelled object detection: Darknet import and export, YOLO inference and loss.

Inference (:mod:`viewfinder.detect.yolo`) needs ONNX Runtime only; building the
torch module (:mod:`viewfinder.detect.darknet`) and the loss need the ``train`` extra.
"""

from viewfinder.detect.darknet_cfg import NetSpec, YoloHead, parse_cfg, read_names, yolo_heads
from viewfinder.detect.darknet_export import export_onnx
from viewfinder.detect.yolo import YoloDetector, load_yolo

__all__ = ["NetSpec", "YoloDetector", "YoloHead", "export_onnx", "load_yolo", "parse_cfg",
           "read_names", "yolo_heads"]
