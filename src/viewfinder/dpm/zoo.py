"""Finding DPM models by name: the runtime model zoo, ``VIEWFINDER_MODELS``, or a path."""

from __future__ import annotations

import os
from pathlib import Path

from viewfinder.config import models_dirs, shared_dir
from viewfinder.dpm.model import Model, load_voc_release5
from viewfinder.errors import ModelNotFoundError, ViewfinderError

__all__ = ["load_model", "resolve_model_path"]

_SUBDIR = Path("dpm") / "voc-release5"


def _candidates(name: str) -> list[str]:
    """File names a model name may have: ``VOC2007_person`` → ``VOC2007_person_final.mat``."""
    base = name.removeprefix("dpm/")
    names = [base, f"{base}.mat", f"{base}_final.mat"]
    if base == "INRIA_person":
        names.append("INRIA_inriaperson_final.mat")
    return names


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The ``.mat`` file of a model given as a path, a zoo name or a bare name.

    Tries, in order: an existing file; ``viewfinder.runtime.zoo.resolve("dpm/<name>")``
    (local directories and cache, no download); ``<VIEWFINDER_MODELS>/dpm/voc-release5/``;
    the shared data directory's ``models/dpm/voc-release5/``.

    Raises:
        ModelNotFoundError: nothing matches (the message lists where it looked).
    """
    p = Path(name_or_path)
    if p.is_file():
        return p
    name = str(name_or_path)
    zoo_name = name if name.startswith("dpm/") else f"dpm/{name}"
    try:
        from viewfinder.runtime import zoo

        return Path(zoo.resolve(zoo_name, fetch=False))
    except (ImportError, ViewfinderError):  # no zoo yet, unknown name, or not local
        pass
    dirs = [*models_dirs(), shared_dir() / "models"]
    for d in dirs:
        for sub in (_SUBDIR, Path("dpm"), Path(".")):
            for fname in _candidates(name):
                if (d / sub / fname).is_file():
                    return d / sub / fname
    where = ", ".join(str(d / _SUBDIR) for d in dirs)
    raise ModelNotFoundError(f"DPM model {name!r}: not a file, not in the model zoo, and not "
                             f"found in {where}")


def load_model(name_or_path: str | os.PathLike[str]) -> Model:
    """Load a DPM by name (``VOC2007_person``, ``dpm/VOC2007_person``) or ``.mat`` path."""
    return load_voc_release5(resolve_model_path(name_or_path))
