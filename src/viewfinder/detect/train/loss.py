"""The YOLOv3 training loss (Darknet's ``forward_yolo_layer``, vectorised in torch).

Each ground-truth box is assigned to the anchor, over all heads, whose shape
matches it best (IoU of widths/heights); the head owning that anchor predicts it
from the cell holding the box centre. Terms, summed over the batch and divided
by the batch size:

* ``loss_xy``: BCE of ``sigmoid(t_xy)`` against the centre's offset in its cell,
* ``loss_wh``: squared error of ``t_wh`` against ``log(gt / anchor)``,
  both weighted by ``2 - w*h`` (w, h relative to the input) as in Darknet,
* ``loss_obj``: BCE of objectness (1 for assigned predictions, 0 elsewhere except
  predictions overlapping some ground truth by more than ``ignore_thresh``),
* ``loss_cls``: BCE of the class probabilities (one-hot) for assigned predictions.

Targets are a ``(M, 6)`` tensor of ``[image index, class, cx, cy, w, h]`` in input pixels.
"""

from __future__ import annotations

from typing import Any

from viewfinder.detect.darknet import _torch
from viewfinder.detect.darknet_cfg import NetSpec, yolo_heads

__all__ = ["YoloLoss", "YoloTrainModel", "anchor_table"]


def anchor_table(spec: NetSpec) -> tuple[list[tuple[float, float]], list[tuple[int, ...]]]:
    """All anchors (of the first ``[yolo]`` layer) and each head's mask into them."""
    first = spec.layers[spec.yolo_indices[0]]
    values = first.get_ints("anchors")
    anchors = [(float(values[2 * i]), float(values[2 * i + 1])) for i in range(len(values) // 2)]
    masks = [spec.layers[i].get_ints("mask", tuple(range(len(anchors))))
             for i in spec.yolo_indices]
    return anchors, masks


def _wh_iou(wh1: Any, wh2: Any) -> Any:
    """IoU of boxes sharing a centre: ``(M, 2)`` x ``(K, 2)`` -> ``(M, K)``."""
    torch = _torch()
    inter = torch.min(wh1[:, None], wh2[None]).prod(2)
    return inter / (wh1.prod(1)[:, None] + wh2.prod(1)[None] - inter)


def _box_iou_cxcywh(a: Any, b: Any) -> Any:
    """IoU of ``(N, P, 4)`` and ``(N, G, 4)`` cxcywh boxes -> ``(N, P, G)``."""
    torch = _torch()
    a1, a2 = a[..., :2] - a[..., 2:] / 2, a[..., :2] + a[..., 2:] / 2
    b1, b2 = b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2
    lt = torch.max(a1[:, :, None], b1[:, None])
    rb = torch.min(a2[:, :, None], b2[:, None])
    inter = (rb - lt).clamp(min=0).prod(3)
    union = a[..., 2:].prod(2)[:, :, None] + b[..., 2:].prod(2)[:, None] - inter
    return inter / union.clamp(min=1e-9)


class YoloLoss:
    """Darknet's YOLOv3 loss for the heads of a parsed cfg.

    Args:
        spec: The network (anchors, masks, classes, ignore thresholds, input size).
    """

    def __init__(self, spec: NetSpec) -> None:
        self.heads = yolo_heads(spec)
        self.anchors, self.masks = anchor_table(spec)
        self.net_hw = spec.input_shape[1:]

    def __call__(self, outputs: list[Any], targets: Any) -> dict[str, Any]:
        """Losses for raw head outputs ``[(N, A*(5+C), H, W)]`` and ``(M, 6)`` targets."""
        torch = _torch()
        n = outputs[0].shape[0]
        targets = targets.float()
        anchors = torch.tensor(self.anchors, device=targets.device)
        best = _wh_iou(targets[:, 4:6], anchors).argmax(1) if len(targets) else targets[:, 0].long()
        gt = _padded_gt(targets, n)
        terms = dict.fromkeys(("loss_xy", "loss_wh", "loss_obj", "loss_cls"), 0.0)
        for out, head, mask in zip(outputs, self.heads, self.masks, strict=True):
            for k, v in self._head_loss(out.float(), head, mask, targets, best, gt).items():
                terms[k] = terms[k] + v
        return {k: v / n for k, v in terms.items()}

    def _head_loss(self, out: Any, head: Any, mask: tuple[int, ...], targets: Any, best: Any,
                   gt: Any) -> dict[str, Any]:
        torch = _torch()
        fn = torch.nn.functional
        n, (gh, gw), c, a = out.shape[0], head.grid, head.classes, len(mask)
        p = out.view(n, a, 5 + c, gh, gw).permute(0, 1, 3, 4, 2)  # N, A, H, W, 5+C
        anchors = torch.tensor(head.anchors, device=out.device)
        sy, sx = head.stride
        # ignore mask from decoded predictions
        gy, gx = torch.meshgrid(torch.arange(gh, device=out.device),
                                torch.arange(gw, device=out.device), indexing="ij")
        with torch.no_grad():
            cx = (torch.sigmoid(p[..., 0]) + gx) * sx
            cy = (torch.sigmoid(p[..., 1]) + gy) * sy
            wh = torch.exp(p[..., 2:4].clamp(max=10)) * anchors[None, :, None, None]
            pred = torch.cat([cx[..., None], cy[..., None], wh], -1).view(n, -1, 4)
            iou = _box_iou_cxcywh(pred, gt) if gt.shape[1] else pred.new_zeros(n, pred.shape[1], 1)
            ignore = (iou.max(2).values > head.ignore_thresh).view(n, a, gh, gw)
        obj_target = torch.zeros(n, a, gh, gw, device=out.device)
        obj_weight = (~ignore).float()
        mask_t = torch.tensor(mask, device=out.device)
        sel = (best[:, None] == mask_t[None]).nonzero()  # (K, 2): target row, slot
        zero = out.sum() * 0.0
        terms = {"loss_xy": zero, "loss_wh": zero, "loss_cls": zero}
        if len(sel):
            t, slot = targets[sel[:, 0]], sel[:, 1]
            b = t[:, 0].long()
            gi = (t[:, 2] / sx).long().clamp(0, gw - 1)
            gj = (t[:, 3] / sy).long().clamp(0, gh - 1)
            pp = p[b, slot, gj, gi]
            scale = 2.0 - (t[:, 4] / self.net_hw[1]) * (t[:, 5] / self.net_hw[0])
            txy = torch.stack([t[:, 2] / sx - gi, t[:, 3] / sy - gj], 1).clamp(1e-4, 1 - 1e-4)
            twh = torch.log(t[:, 4:6] / anchors[slot]).clamp(-10, 10)
            bce = fn.binary_cross_entropy_with_logits
            terms["loss_xy"] = (bce(pp[:, :2], txy, reduction="none").sum(1) * scale).sum()
            terms["loss_wh"] = (((pp[:, 2:4] - twh) ** 2).sum(1) * scale).sum() * 0.5
            onehot = fn.one_hot(t[:, 1].long(), c).float()
            terms["loss_cls"] = bce(pp[:, 5:], onehot, reduction="sum")
            obj_target[b, slot, gj, gi] = 1.0
            obj_weight[b, slot, gj, gi] = 1.0
        terms["loss_obj"] = fn.binary_cross_entropy_with_logits(
            p[..., 4], obj_target, weight=obj_weight, reduction="sum")
        return terms


def _padded_gt(targets: Any, n: int) -> Any:
    """``(N, G, 4)`` cxcywh ground truth per image, padded with zero-size boxes."""
    torch = _torch()
    counts = torch.bincount(targets[:, 0].long(), minlength=n) if len(targets) else None
    g = int(counts.max()) if counts is not None else 0
    gt = targets.new_zeros(n, g, 4)
    if g:
        order = torch.argsort(targets[:, 0], stable=True)
        t = targets[order]
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(len(t), device=t.device) - starts[t[:, 0].long()]
        gt[t[:, 0].long(), slot] = t[:, 2:6]
    return gt


def _make_train_model_class() -> Any:
    torch = _torch()

    class YoloTrainModel(torch.nn.Module):
        """A Darknet network with its loss: ``forward((images, targets)) -> {name: loss}``."""

        def __init__(self, network: Any) -> None:
            super().__init__()
            self.network = network
            self.loss = YoloLoss(network.spec)

        def forward(self, batch: tuple[Any, Any]) -> dict[str, Any]:
            images, targets = batch
            return self.loss(self.network(images), targets)

    return YoloTrainModel


def YoloTrainModel(network: Any) -> Any:  # noqa: N802 - a factory standing in for the class
    """Wrap a network from :func:`~viewfinder.detect.darknet.build_darknet` with its loss."""
    return _make_train_model_class()(network)
