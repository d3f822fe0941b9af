"""Atomic file output: write to a temporary name beside the target, then rename.

A leaf module (imports nothing from viewfinder but :mod:`viewfinder.errors`), so
every layer can use it. No partial output is ever left behind on failure.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from viewfinder.errors import InputFileError, ViewfinderError

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_readable",
    "expand_files",
]


def check_readable(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise a one-line error if it is not a readable file."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such {what}")
    if p.is_dir():
        raise InputFileError(f"{p}: is a directory, expected a {what}")
    if not os.access(p, os.R_OK):
        raise InputFileError(f"{p}: {what} is not readable")
    return p


def expand_files(
    inputs: Sequence[str | os.PathLike[str]],
    suffixes: Collection[str],
    what: str,
    empty_error: type[ViewfinderError] = InputFileError,
    file_kind: str = "input file",
) -> list[Path]:
    """Files named by ``inputs``: files as given (checked readable), directories in name order.

    Args:
        inputs: Files and/or directories.
        suffixes: Lower-case suffixes (with the dot) a directory entry must have.
        what: What the files are, for messages (e.g. ``"images (.jpg, .png)"``).
        empty_error: Raised when a directory holds no matching file.
        file_kind: What a single named file is, for the missing-file message.
    """
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in suffixes)
            if not found:
                raise empty_error(f"{p}: no {what} in this directory")
            files.extend(found)
        else:
            files.append(check_readable(p, file_kind))
    return files


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and the target is untouched.
    The temporary name keeps the target's suffix (``suffix`` overrides), so
    writers that pick a format by extension (OpenCV, PyAV) still work.

    Raises:
        InputFileError: the output directory does not exist or is not writable.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise InputFileError(f"{target}: output directory {parent} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix,
            dir=parent,
        )
    except OSError as exc:
        raise InputFileError(f"{target}: cannot write ({exc.strerror})") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise InputFileError(f"{target}: cannot write ({exc.strerror})") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
