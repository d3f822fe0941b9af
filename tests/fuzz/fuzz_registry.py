"""Every fuzz target, and the crashes known but not yet fixed (each has an xfail test).

A crash is known by its signature, ``Type @ viewfinder/<file>`` of the innermost
viewfinder frame (``fuzz_harness.signature``). The regression test of each
entry is in ``test_fuzz_regressions.py``, marked ``xfail(strict=True)``: when the
owner fixes the parser the test passes, strict xfail fails, and the entry goes.
"""

from __future__ import annotations

from pathlib import Path

from fuzz_core import Target
from fuzz_media import IMAGE, VIDEO, YUV
from fuzz_models import DARKNET_CFG, DARKNET_WEIGHTS, DPM_MAT, ONNX_MODEL
from fuzz_text import CONVERT_TOML, DETFILE, VOC_XML

TARGETS: dict[str, Target] = {t.name: t for t in (
    IMAGE, VIDEO, YUV, DARKNET_CFG, DARKNET_WEIGHTS, DPM_MAT, VOC_XML, DETFILE,
    CONVERT_TOML, ONNX_MODEL)}

#: target -> signatures of crashes found, reported, and awaiting a fix by the file's owner.
KNOWN: dict[str, set[str]] = {}


def shared_or_none() -> Path | None:
    """The shared data directory when it is there (seeds from real files), else None."""
    from viewfinder.config import shared_dir

    root = shared_dir()
    return root if (root / "README.md").is_file() else None
