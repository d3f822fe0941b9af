"""Every training parameter, with voc-release defaults and where each comes from.

``rel4`` = voc-release4 (``pascal_train.m``, ``train.m``, ``learn.cc``), ``rel5`` =
voc-release5 (``pascal_train.m``, ``train.m``, ``gradient.cc``, ``model_*.m``).
Where this package departs from them the note says so.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any

from viewfinder.errors import ConfigError

__all__ = ["PARAM_NOTES", "TrainParams"]


@dataclass(frozen=True)
class TrainParams:
    """Training parameters (see :data:`PARAM_NOTES` for the source of each default)."""

    components: int = 3
    parts: int = 8
    part_size: int = 6
    C: float = 0.001
    J: float = 1.0
    sbin: int = 8
    interval: int = 10
    min_root_area: float = 3000.0
    max_root_area: float = 5000.0
    area_percentile: float = 20.0
    min_overlap: float = 0.7
    use_truncated: bool = True
    mirror: bool = True
    max_pos: int = 0
    max_neg: int = 200
    warp_neg_per_image: int = 10
    latent_iters_root: int = 2
    latent_iters_parts: int = 4
    neg_rounds: int = 3
    max_neg_per_image: int = 0
    neg_margin: float = -1.002
    cache_examples: int = 24000
    cache_bytes: int = 300_000_000
    solver: str = "dcd"
    sgd_iter: int = 10_000_000
    sgd_min_iter: int = 5_000_000
    solver_passes: int = 300
    solver_tol: float = 1e-3
    bbox_ridge: float = 1.0
    bbox_min_overlap: float = 0.7
    pyramid_cache_mb: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        checks = (
            (self.components >= 1, "components", ">= 1"),
            (self.parts >= 0, "parts", ">= 0"),
            (self.part_size >= 1, "part_size", ">= 1"),
            (self.C > 0, "C", "> 0"), (self.J > 0, "J", "> 0"),
            (self.sbin >= 4 and self.sbin % 2 == 0, "sbin", "an even number >= 4"),
            (self.interval >= 1, "interval", ">= 1"),
            (0 < self.min_root_area <= self.max_root_area, "min_root_area",
             "> 0 and <= max_root_area"),
            (0 <= self.area_percentile <= 100, "area_percentile", "in [0, 100]"),
            (0 < self.min_overlap <= 1, "min_overlap", "in (0, 1]"),
            (min(self.max_neg, self.max_pos, self.max_neg_per_image) >= 0,
             "max_neg/max_pos/max_neg_per_image", ">= 0"),
            (self.cache_examples >= 1 and self.cache_bytes >= 1, "cache_examples/cache_bytes",
             ">= 1"),
            (self.solver in ("dcd", "sgd"), "solver", "'dcd' or 'sgd'"),
            (min(self.latent_iters_root, self.latent_iters_parts, self.neg_rounds) >= 1,
             "latent_iters_root/latent_iters_parts/neg_rounds", ">= 1"),
        )
        for ok, name, want in checks:
            if not ok:
                raise ConfigError(f"training parameter {name}: expected {want}, got "
                                  f"{getattr(self, name.split('/')[0])!r}")

    @classmethod
    def small(cls, **overrides: Any) -> TrainParams:
        """Settings for tiny sets and tests: 1 component, 4 parts, interval 4, small roots."""
        base = dict(components=1, parts=4, part_size=4, interval=4, min_root_area=1200.0,
                    max_root_area=2400.0, latent_iters_root=1, latent_iters_parts=2,
                    neg_rounds=2, max_neg_per_image=40, cache_examples=4000,
                    solver_passes=30, solver_tol=1e-3, C=0.01, sgd_iter=200_000,
                    sgd_min_iter=50_000)
        base.update(overrides)
        return cls(**base)

    def replace(self, **changes: Any) -> TrainParams:
        """A copy with some values changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """The parameters as a JSON object."""
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainParams:
        """Parameters from a dict; unknown keys are an error naming the key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"training parameters: unknown key {unknown[0]!r}")
        return cls(**values)


#: Where each default comes from (shown by ``viewfinder dpm train --help`` and the docs).
PARAM_NOTES: dict[str, str] = {
    "components": "rel5 pascal_train.m n=3 (aspect-ratio clusters; each also mirrored)",
    "parts": "rel5 pascal_train.m: 8 parts per component",
    "part_size": "rel5 model_addparts: 6x6 part filters",
    "C": "rel5 pascal_train.m C=0.001",
    "J": "rel4 train.m J=1 (positive weight; rel5 dropped it)",
    "sbin": "rel5 model.sbin=8",
    "interval": "rel5 model.interval=10 levels per octave",
    "min_root_area": "rel5 initmodel.m: root area clipped to [3000, 5000] px^2",
    "max_root_area": "rel5 initmodel.m",
    "area_percentile": "rel5 initmodel.m: 20th percentile of positive box areas",
    "min_overlap": "rel5 poslatent: latent placement must overlap the box >= 0.7",
    "use_truncated": "rel5 pascal_data.m keeps truncated boxes (not in warped init here)",
    "mirror": "rel5 mirrored components (here: every component also scored flipped)",
    "max_pos": "0 = all positives (rel5 uses all non-difficult)",
    "max_neg": "rel5 pascal_train.m: 200 negative images for mining (neg(1:200))",
    "warp_neg_per_image": "rel5 rndneg: random negative windows per image",
    "latent_iters_root": "rel4 pascal_train.m: latent rounds for the merged roots",
    "latent_iters_parts": "rel4 pascal_train.m: latent rounds after parts (8 there; 4 here)",
    "neg_rounds": "rel5 train.m negiters: hard-negative mining rounds per latent round",
    "max_neg_per_image": "0 = each image's share of the cache (capacity / negative images), "
                         "hardest first (rel5 det_limit: room left / images in a batch)",
    "neg_margin": "rel5 train.m: mine negatives scoring above -1.002",
    "cache_examples": "rel5 train.m max_num examples in the feature cache",
    "cache_bytes": "rel4 train.m bytelimit 3e8 for the feature cache",
    "solver": "dcd: dual coordinate descent (this package); sgd: learn.cc",
    "sgd_iter": "learn.cc ITER=10e6",
    "sgd_min_iter": "learn.cc MIN_ITER=5e6",
    "solver_passes": "dcd coordinate passes per step at most (this package)",
    "solver_tol": "dcd stops a step at this relative duality gap (this package)",
    "bbox_ridge": "rel5 trainbox.m: ridge regularisation of the box regressors",
    "bbox_min_overlap": "rel5 trainbox.m: detections overlapping a box >= 0.7 train it",
    "pyramid_cache_mb": "memory for feature pyramids kept between latent rounds (this package)",
    "seed": "rel5 learn.cc srand48(3); here numpy seeds",
}
