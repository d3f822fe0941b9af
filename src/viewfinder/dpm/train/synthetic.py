"""A tiny synthetic VOC set for tests and benchmarks: articulated figures on clutter.

Each object (class ``figure``) is a torso with a head and two legs whose positions
vary independently from figure to figure (so a part-based model beats a rigid
root filter), drawn at random scales and colours on backgrounds cluttered with
lines, boxes, discs and noise. Negative images carry the same kinds of clutter
(loose torsos, heads and bars included) but no figure.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from viewfinder.datasets.voc import Annotation, VOCObject, VOCWriter

__all__ = ["CLASS", "render_figure", "write_synthetic_voc"]

CLASS = "figure"


def _clutter(img: np.ndarray, rng: np.random.Generator, n: int) -> None:
    h, w = img.shape[:2]
    for _ in range(n):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 4)
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if kind == 0:
            cv2.line(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), colour,
                     int(rng.integers(1, 4)))
        elif kind == 1:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(6, 30)), y + int(rng.integers(6, 30))),
                          colour, -1)
        elif kind == 2:
            cv2.circle(img, (x, y), int(rng.integers(3, 10)), colour, -1)
        else:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(3, 8)), y + int(rng.integers(15, 40))),
                          colour, -1)


def render_figure(img: np.ndarray, x: int, y: int, scale: float,
                  rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Draw one figure with its top-left near ``(x, y)``; return its 1-based devkit box."""
    s = scale
    colour = tuple(int(v) for v in rng.integers(0, 90, 3))
    tw, th = int(22 * s), int(26 * s)
    head_r = int(7 * s)
    cx = x + int(16 * s)
    torso_top = y + 2 * head_r + int(2 * s)
    head_dx = int(rng.integers(-12, 13) * s)
    cv2.circle(img, (cx + head_dx, y + head_r), head_r, colour, -1)
    cv2.rectangle(img, (cx - tw // 2, torso_top), (cx + tw // 2, torso_top + th), colour, -1)
    leg_w, leg_h = max(2, int(5 * s)), int(22 * s)
    xs = []
    for side in (-1, 1):
        lx = cx + side * int(6 * s) + int(rng.integers(-9, 10) * s) - leg_w // 2
        cv2.rectangle(img, (lx, torso_top + th), (lx + leg_w, torso_top + th + leg_h), colour, -1)
        xs += [lx, lx + leg_w]
    x1 = min(cx - tw // 2, cx + head_dx - head_r, *xs)
    x2 = max(cx + tw // 2, cx + head_dx + head_r, *xs)
    y2 = torso_top + th + leg_h
    return x1 + 1, y + 1, x2 + 1, y2 + 1


def _image(rng: np.random.Generator, size: int, n_objects: int
           ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    base = rng.integers(120, 256, 3)
    img = np.clip(base + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    _clutter(img, rng, int(rng.integers(6, 14)))
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(n_objects * 10):
        if len(boxes) == n_objects:
            break
        scale = float(rng.uniform(0.9, 1.4))
        x = int(rng.integers(0, size - int(36 * scale)))
        y = int(rng.integers(0, size - int(80 * scale)))
        if any(not (x + 40 * scale < b[0] or x > b[2] or y + 80 * scale < b[1] or y > b[3])
               for b in boxes):
            continue
        boxes.append(render_figure(img, x, y, scale, rng))
    return img, boxes


def write_synthetic_voc(root: str | os.PathLike[str], n_train: int = 24, n_test: int = 16,
                        size: int = 160, seed: int = 0, neg_fraction: float = 0.4) -> Path:
    """Write a VOC-layout set of ``figure`` objects with ``train`` and ``test`` splits.

    Args:
        root: Output directory.
        n_train, n_test: Images per split.
        size: Square image side in pixels.
        seed: Random seed (the set is deterministic).
        neg_fraction: Share of images without any figure.

    Returns:
        The root directory.
    """
    rng = np.random.default_rng(seed)
    writer = VOCWriter(root)
    for split, count in (("train", n_train), ("test", n_test)):
        ids = []
        for i in range(count):
            image_id = f"{split}{i:04d}"
            n_obj = 0 if rng.random() < neg_fraction else int(rng.integers(1, 3))
            img, boxes = _image(rng, size, n_obj)
            objs = tuple(VOCObject(CLASS, tuple(float(v) for v in b)) for b in boxes)
            writer.add(image_id, img, Annotation(size, size, objs))
            ids.append(image_id)
        writer.write_split(split, ids, classes=[CLASS])
    return Path(root)
