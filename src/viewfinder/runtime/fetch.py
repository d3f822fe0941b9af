"""Finding, downloading and verifying model files.

Search order for a :class:`~viewfinder.runtime.specs.FileSpec`: each
``VIEWFINDER_MODELS`` directory (the file name directly, then ``subdir/name``),
then ``cache_dir()/models/subdir/name``, then a download from the upstream URL
(urllib, sha256 verified while streaming, written atomically). Offline, the error
says which file is missing, which URL failed, and where to put the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from viewfinder.config import cache_dir, models_dirs
from viewfinder.errors import ModelError, ModelNotFoundError
from viewfinder.fileio import atomic_path
from viewfinder.runtime.specs import FileSpec

__all__ = ["Progress", "download", "file_sha256", "find_local", "verify_file"]

log = logging.getLogger(__name__)

#: ``progress(done_bytes, total_bytes_or_None)``, called while downloading.
Progress = Callable[[int, "int | None"], None]

_CHUNK = 1 << 20
_TIMEOUT_S = 30.0
_sha_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, memoised per (path, size, mtime) for the process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_memo:
        digest = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
        _sha_memo[key] = digest.hexdigest()
    return _sha_memo[key]


def verify_file(path: Path, spec: FileSpec) -> str:
    """Check a file's size and sha256 against its spec; return the digest.

    Raises:
        ModelError: size or digest differ (one line with expected and actual).
    """
    size = path.stat().st_size
    if spec.size is not None and spec.sha256 and size != spec.size and len(spec.sha256) == 1:
        raise ModelError(
            f"{path}: {size} bytes, expected {spec.size} for {spec.name} "
            "(truncated or a different file; delete it and fetch again)"
        )
    digest = file_sha256(path)
    if spec.sha256 and digest not in spec.sha256:
        raise ModelError(
            f"{path}: sha256 {digest[:16]}..., expected {spec.sha256[0][:16]}... for {spec.name} "
            "(corrupt or a different file; delete it and fetch again)"
        )
    return digest


def local_candidates(spec: FileSpec) -> list[Path]:
    """Every place the file is looked for, in search order (the cache last)."""
    places: list[Path] = []
    for root in models_dirs():
        places += [root / spec.name, root / spec.relpath]
    places.append(cache_dir() / "models" / spec.relpath)
    return places


def find_local(spec: FileSpec) -> Path | None:
    """The first existing local copy of ``spec`` (not verified), or ``None``."""
    for place in local_candidates(spec):
        if place.is_file():
            return place
    return None


def _stream(url: str, dest: Path, progress: Progress | None) -> None:
    import urllib.request  # only when downloading: every command resolves models

    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp, open(dest, "wb") as out:  # noqa: S310
        total = resp.headers.get("Content-Length")
        total_n = int(total) if total and total.isdigit() else None
        done = 0
        for chunk in iter(lambda: resp.read(_CHUNK), b""):
            out.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total_n)


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    """Copy ``member`` (exact path, or the entry whose path ends with it) to ``dest``."""
    import tarfile
    import zipfile

    def pick(names: list[str]) -> str:
        for name in names:
            if name == member or name.endswith("/" + member):
                return name
        raise ModelError(f"{archive}: archive has no member {member}")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf, zf.open(pick(zf.namelist())) as src, \
                open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        return
    try:
        with tarfile.open(archive) as tf:
            src = tf.extractfile(pick(tf.getnames()))
            if src is None:
                raise ModelError(f"{archive}: member {member} is not a regular file")
            with src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    except tarfile.TarError as exc:
        raise ModelError(f"{archive}: not a zip or tar archive ({exc})") from exc


def _missing(spec: FileSpec, model: str, why: str) -> ModelNotFoundError:
    roots = os.pathsep.join(str(p) for p in models_dirs()) or "unset"
    return ModelNotFoundError(
        f"model {model}: {spec.relpath} not found (VIEWFINDER_MODELS={roots}; "
        f"cache {cache_dir() / 'models'}) and {why}; put the file at "
        f"<dir>/{spec.relpath} and set VIEWFINDER_MODELS=<dir>"
    )


def _check_download(tmp: Path, spec: FileSpec) -> None:
    digest = file_sha256(tmp)
    if spec.sha256 and digest not in spec.sha256:
        where = f"{spec.url}" + (f" member {spec.member}" if spec.member else "")
        raise ModelError(
            f"{where}: downloaded sha256 {digest[:16]}... is not the recorded "
            f"{spec.sha256[0][:16]}... of {spec.name} (upstream changed or the mirror "
            "differs); nothing was kept"
        )


def download(spec: FileSpec, model: str, progress: Progress | None = None) -> Path:
    """Download ``spec`` into the cache, verify its sha256, and return its path.

    Raises:
        ModelNotFoundError: no URL, or the download failed (offline...).
        ModelError: the downloaded file does not match the recorded digest.
    """
    if spec.url is None:
        raise _missing(spec, model, "no public download URL is known")
    target = cache_dir() / "models" / spec.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s from %s", spec.relpath, spec.url)
    try:
        if spec.member is None:
            with atomic_path(target) as tmp:
                _stream(spec.url, tmp, progress)
                _check_download(tmp, spec)
        else:
            archive = cache_dir() / "downloads" / Path(spec.url.split("?")[0]).name
            archive.parent.mkdir(parents=True, exist_ok=True)
            if not archive.is_file():
                with atomic_path(archive) as tmp:
                    _stream(spec.url, tmp, progress)
            with atomic_path(target) as tmp:
                _extract_member(archive, spec.member, tmp)
                _check_download(tmp, spec)
    except (OSError, ValueError) as exc:  # urllib's URLError is an OSError
        reason = getattr(exc, "reason", None) or exc
        raise _missing(spec, model, f"downloading {spec.url} failed ({reason})") from exc
    return target
