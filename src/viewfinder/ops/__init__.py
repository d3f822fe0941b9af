"""Pure, shape-documented array ops shared by every task (boxes, IoU, NMS)."""

from viewfinder.ops.boxes import (
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    nms,
)

__all__ = ["batched_nms", "box_area", "box_convert", "box_iou", "clip_boxes", "nms"]
