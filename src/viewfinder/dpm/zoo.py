"""Finding DPM models: a zoo name (``VOC2007_person``, ``dpm/VOC2007_person``) or a path.

Names go through the one model resolver, :func:`viewfinder.runtime.zoo.resolve_model`
(``VIEWFINDER_MODELS``, the cache, or a download; every local copy checksum-verified).
A copy that fails its checksum is an error: it is never looked up again by file name.
"""

from __future__ import annotations

import os
from pathlib import Path

from viewfinder.dpm.model import Model, load_voc_release5

__all__ = ["load_model", "resolve_model_path"]


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The ``.mat`` file of a model given as a zoo name, a zoo file name or a path.

    Raises:
        ModelError: the zoo's copy fails its checksum (one line naming the file), or the
            name is a zoo model of another task.
        ModelNotFoundError: neither an existing file nor a DPM in the zoo (close names
            listed), or the zoo file is not available.
    """
    from viewfinder.runtime.zoo import resolve_model

    return resolve_model(name_or_path, task="dpm", identify=False)[0]


def load_model(name_or_path: str | os.PathLike[str]) -> Model:
    """Load a DPM by name (``VOC2007_person``, ``dpm/VOC2007_person``) or ``.mat`` path."""
    return load_voc_release5(resolve_model_path(name_or_path))
