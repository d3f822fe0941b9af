"""Training-time augmentation and batching for YOLO (NumPy/OpenCV; torch only to collate).

Darknet's recipe: random crop/scale with aspect jitter (``jitter``) placed on the
network canvas, horizontal flip, and HSV jitter (``hue``, ``saturation``,
``exposure``). Geometry goes through :class:`viewfinder.media.transforms.AffineTransform`
so boxes follow the image exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from viewfinder.errors import ShapeError, check_shape
from viewfinder.media.transforms import AffineTransform, letterbox

__all__ = ["Augment", "BatchLoader", "Sample", "collate", "hsv_jitter", "random_placement"]


@dataclass(frozen=True)
class Sample:
    """One training image: BGR uint8 pixels, ``(N, 4)`` xyxy boxes, ``(N,)`` class ids."""

    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ShapeError(f"Sample.image: expected (H, W, 3) uint8, got {self.image.shape} "
                             f"{self.image.dtype}")
        check_shape(np.asarray(self.boxes).reshape(-1, 4), ("N", 4), "Sample.boxes")
        check_shape(np.asarray(self.classes).reshape(-1), (len(np.asarray(self.boxes).reshape(
            -1, 4)),), "Sample.classes")


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, hue: float = 0.1,
               saturation: float = 1.5, exposure: float = 1.5) -> np.ndarray:
    """Darknet's colour jitter: hue shift in ``[-hue, hue]`` (fraction of the circle),
    saturation and value scaled by a factor in ``[1/s, s]``."""
    def factor(s: float) -> float:
        f = rng.uniform(1.0, s)
        return f if rng.random() < 0.5 else 1.0 / f

    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-hue, hue) * 180.0) % 180.0
    hsv[..., 1] *= factor(saturation)
    hsv[..., 2] *= factor(exposure)
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)


def random_placement(w: int, h: int, size: int, jitter: float,
                     rng: np.random.Generator) -> AffineTransform:
    """Darknet-style jitter: random aspect and scale, placed at random on the canvas."""
    dw, dh = w * jitter, h * jitter
    new_ar = (w + rng.uniform(-dw, dw)) / (h + rng.uniform(-dh, dh))
    scale = rng.uniform(0.25, 2.0) if jitter > 0 else 1.0
    scale = min(scale, 1.0) if jitter < 0.2 else scale
    if new_ar < 1:
        nh = scale * size
        nw = nh * new_ar
    else:
        nw = scale * size
        nh = nw / new_ar
    nw, nh = max(1.0, nw), max(1.0, nh)
    tx, ty = rng.uniform(0, size - nw) if nw < size else -rng.uniform(0, nw - size), \
        rng.uniform(0, size - nh) if nh < size else -rng.uniform(0, nh - size)
    return AffineTransform(nw / w, nh / h, float(round(tx)), float(round(ty)), size, size, w, h,
                           pad_value=128)


class Augment:
    """Turns a :class:`Sample` into a network-sized training image and pixel boxes.

    Args:
        size: Network input size (square).
        jitter: Darknet ``jitter`` (0 disables geometric jitter: plain letterbox).
        flip: Probability of a horizontal flip.
        hsv: ``(hue, saturation, exposure)`` or None to disable colour jitter.
        min_size: Boxes smaller than this (pixels, either side) after cropping are dropped.
        seed: RNG seed.
    """

    def __init__(self, size: int, jitter: float = 0.3, flip: float = 0.5,
                 hsv: tuple[float, float, float] | None = (0.1, 1.5, 1.5),
                 min_size: float = 2.0, seed: int | None = None) -> None:
        self.size, self.jitter, self.flip, self.hsv = size, jitter, flip, hsv
        self.min_size = min_size
        self.rng = np.random.default_rng(seed)

    def __call__(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns the ``size x size`` BGR image, ``(K, 4)`` xyxy boxes and ``(K,)`` classes."""
        h, w = sample.image.shape[:2]
        if self.jitter > 0:
            t = random_placement(w, h, self.size, self.jitter, self.rng)
        else:
            t = letterbox(w, h, self.size, self.size, pad_value=128)
        image = t.apply_image(sample.image)
        boxes = t.apply_box(np.asarray(sample.boxes, np.float32).reshape(-1, 4))
        boxes = np.clip(boxes, 0, self.size)
        if self.rng.random() < self.flip:
            image = image[:, ::-1]
            boxes = np.stack([self.size - boxes[:, 2], boxes[:, 1], self.size - boxes[:, 0],
                              boxes[:, 3]], 1)
        if self.hsv is not None:
            image = hsv_jitter(np.ascontiguousarray(image), self.rng, *self.hsv)
        keep = ((boxes[:, 2] - boxes[:, 0]) >= self.min_size) & (
            (boxes[:, 3] - boxes[:, 1]) >= self.min_size)
        classes = np.asarray(sample.classes, np.int64).reshape(-1)
        return np.ascontiguousarray(image), boxes[keep], classes[keep]


def collate(items: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """Batch augmented items into ``(N, 3, S, S)`` RGB 0..1 and ``(M, 6)`` targets
    ``[image, class, cx, cy, w, h]`` (input pixels), as torch tensors."""
    import torch

    images = np.stack([im[..., ::-1].transpose(2, 0, 1) for im, _, _ in items])
    rows = []
    for i, (_, boxes, classes) in enumerate(items):
        cxcy = (boxes[:, :2] + boxes[:, 2:]) / 2
        wh = boxes[:, 2:] - boxes[:, :2]
        rows.append(np.concatenate([np.full((len(boxes), 1), i, np.float32),
                                    classes[:, None].astype(np.float32), cxcy, wh], 1))
    targets = np.concatenate(rows, 0) if rows else np.zeros((0, 6), np.float32)
    return (torch.from_numpy(images.astype(np.float32) / 255.0),
            torch.from_numpy(targets.astype(np.float32)))


class BatchLoader:
    """Shuffled batches of augmented samples (one epoch per iteration).

    Args:
        load: ``load(i) -> Sample`` for ``i`` in ``range(count)``.
        count: Number of samples.
        augment: The augmentation.
        batch_size: Samples per batch.
        seed: Shuffle seed.
    """

    def __init__(self, load: Callable[[int], Sample], count: int, augment: Augment,
                 batch_size: int, seed: int | None = None) -> None:
        self.load, self.count, self.augment = load, count, augment
        self.batch_size = max(1, batch_size)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return (self.count + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = self.rng.permutation(self.count)
        for start in range(0, self.count, self.batch_size):
            yield collate([self.augment(self.load(int(i)))
                           for i in order[start:start + self.batch_size]])
