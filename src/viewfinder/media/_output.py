"""Up-front checks of output paths (before any work is done or any byte is written)."""

from __future__ import annotations

import os
from pathlib import Path

from viewfinder.errors import InputFileError

__all__ = ["check_output"]


def check_output(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path, or raise one line if it cannot be a new output file.

    Raises:
        InputFileError: it is a directory, or its directory is missing or not writable.
    """
    target = Path(path)
    if target.is_dir():
        raise InputFileError(f"{target}: is a directory, expected an output file name")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise InputFileError(f"{target}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InputFileError(f"{target}: output directory {parent} is not writable")
    return target
