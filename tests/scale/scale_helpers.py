"""Helpers of the scale tests, importable by the worker processes they start (this
folder is on ``sys.path`` under pytest, and spawned workers inherit it)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewfinder.tasks import TaskSpec

#: The size of the image that kills its worker (``make_victim``).
VICTIM_HW = (77, 123)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def failure_lines(err: str) -> list[str]:
    """The ``failed: ...`` lines a command printed."""
    return [line for line in err.splitlines() if line.startswith("failed:")]


def make_victim(path: Path) -> Path:
    """A valid JPEG of :data:`VICTIM_HW`: the image a :class:`KillerSpec` task dies on."""
    import cv2
    import numpy as np

    cv2.imwrite(str(path), np.full((*VICTIM_HW, 3), 127, np.uint8))
    return path


class _Killer:
    """A task that SIGKILLs its own process on the victim image (once, or always)."""

    def __init__(self, task: Any, marker: str | None) -> None:
        self.task, self.marker = task, marker
        self.name = task.name

    def image(self, image: Any) -> Any:
        if image.shape[:2] == VICTIM_HW and (self.marker is None
                                            or not os.path.exists(self.marker)):
            if self.marker is not None:
                Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.task.image(image)

    def frame(self, image: Any, time: float) -> Any:
        return self.task.frame(image, time)

    def reset(self) -> None:
        self.task.reset()


@dataclass(frozen=True)
class KillerSpec(TaskSpec):
    """A task spec whose task kills its worker on the victim image: the first time only
    when ``options["marker"]`` names a file that does not exist yet, every time when
    it is None."""

    def build(self) -> Any:
        options = dict(self.options)
        marker = options.pop("marker", None)
        return _Killer(TaskSpec(self.name, self.model, options).build(), marker)


def kill_on(state: Any, unit: Any) -> Any:
    """``map_units`` work: kill this worker on unit ``"die"`` (first try only when the
    marker file is new), else return the unit doubled."""
    value, marker = unit
    if value == "die" and not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    if value == "always":
        os.kill(os.getpid(), signal.SIGKILL)
    return value * 2


def pid_and_threads(state: Any, unit: Any) -> Any:
    """``map_units`` work: the worker's pid and thread readback."""
    from viewfinder.scale.threads import thread_report

    return thread_report(state)


def boom(state: Any, unit: Any) -> Any:
    """``map_units`` work: raise on unit ``"bad"`` (an error of the work, not a lost worker)."""
    if unit == "bad":
        raise ValueError("bad unit")
    return unit


@dataclass(frozen=True)
class CountingSetup:
    """Setup that returns its process id (so a test sees which worker ran a unit)."""

    def __call__(self) -> int:
        return os.getpid()


def setup_pid(state: Any, unit: Any) -> Any:
    """``map_units`` work: ``(unit, the pid its setup ran in, this pid)``."""
    return unit, state, os.getpid()
