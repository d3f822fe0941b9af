"""Process-wide settings read from the environment (never at import time).

``VIEWFINDER_SHARED``: the directory of real test data and weights (default
``../shared`` beside the repository, i.e. beside the current directory's repo root).
``VIEWFINDER_MODELS``: a local model directory searched before the cache.
``VIEWFINDER_CACHE``: where downloads and measured settings are cached
(default ``~/.cache/viewfinder``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "models_dirs", "shared_dir"]


def shared_dir() -> Path:
    """The shared data directory (``VIEWFINDER_SHARED``, default ``../shared``)."""
    env = os.environ.get("VIEWFINDER_SHARED")
    if env:
        return Path(env).expanduser()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent.parent / "shared").is_dir():
            return parent.parent / "shared"
    return Path.cwd().parent / "shared"


def models_dirs() -> list[Path]:
    """Local model directories from ``VIEWFINDER_MODELS`` (``os.pathsep``-separated)."""
    env = os.environ.get("VIEWFINDER_MODELS", "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p]


def cache_dir() -> Path:
    """The cache directory (``VIEWFINDER_CACHE``, default ``~/.cache/viewfinder``)."""
    env = os.environ.get("VIEWFINDER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "viewfinder"
