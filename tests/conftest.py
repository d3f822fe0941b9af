"""Shared fixtures: the real data directory and CLI runner.

Real files come from ``VIEWFINDER_SHARED`` (default ``../shared``) through the
``shared`` fixture alone; tests that need them skip cleanly when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from viewfinder.config import shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared data directory; skips the test when it is missing."""
    root = shared_dir()
    if not (root / "README.md").exists():
        pytest.skip(f"shared data not found at {root} (set VIEWFINDER_SHARED)")
    return root


@pytest.fixture(scope="session", autouse=True)
def _models_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Point the model directory at shared/models and the cache at a temp dir."""
    root = shared_dir()
    os.environ.setdefault("VIEWFINDER_MODELS", str(root / "models"))
    os.environ["VIEWFINDER_CACHE"] = str(tmp_path_factory.mktemp("vf-cache"))


@pytest.fixture()
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process: ``code, out, err = run_cli("media", "info", path)``."""
    from viewfinder.cli import main

    def _run(*args: object) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray (2 CPUs, no dashboard) for the session; the engines do not shut
    down a Ray they did not start. Its workers find ``tests/scale/scale_helpers`` on
    PYTHONPATH. Tests using it share the ``scale-ray`` xdist group (one Ray per test
    process)."""
    import logging
    import os

    import ray

    old = os.environ.get("PYTHONPATH")
    here = str(Path(__file__).parent / "scale")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, old) if p)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
        yield ray
        ray.shutdown()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
