"""The run directory: one file per finished stage, a state file, and the log.

Layout of ``RUN/``::

    params.json        the parameters the run was started with
    state.json         finished stages, seconds per stage, objective history
    data.json          the positives and negatives (stage ``data``)
    <stage>.npz        the model after each model stage
    train.log          progress: objective and cache size of every solve

Every file is written atomically (temporary file, then rename), so an interrupted
run leaves the last finished stage intact and a rerun resumes after it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from viewfinder.dpm.train.params import TrainParams
from viewfinder.errors import ConfigError, InputFileError
from viewfinder.fileio import atomic_write_text

__all__ = ["RunDir"]

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RunDir:
    """A training run's directory.

    Args:
        path: The directory (created if missing).
        params: The run's parameters; a directory started with others is refused.
        cls: The class trained; a directory started for another class is refused.
        split: The training split; likewise.

    Raises:
        ConfigError: the directory belongs to a run with other parameters, class or split.
        InputFileError: the path exists and is not a directory, or cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], params: TrainParams, cls: str,
                 split: str = "train") -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InputFileError(f"{self.path}: run directory path is a file")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputFileError(f"{self.path}: cannot create run directory ({exc})") from exc
        self.params = params
        self._check_params(params, cls, split)
        self.state = self._read_state()

    def _check_params(self, params: TrainParams, cls: str, split: str) -> None:
        stored = self.path / "params.json"
        mine = {"cls": cls, "split": split, **json.loads(params.to_json())}
        if stored.is_file():
            old = json.loads(stored.read_text(encoding="utf-8"))
            for key in sorted(set(old) | set(mine)):
                if old.get(key) != mine.get(key):
                    raise ConfigError(
                        f"{self.path}: run was started with {key}={old.get(key)!r}, not "
                        f"{mine.get(key)!r}; use another --out or remove the directory")
        else:
            atomic_write_text(stored, json.dumps(mine, indent=1, sort_keys=True))

    def _read_state(self) -> dict[str, Any]:
        path = self.path / "state.json"
        if not path.is_file():
            return {"finished": [], "seconds": {}, "objective": {}}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ConfigError(f"{path}: corrupt run state ({exc})") from exc

    def finished(self, stage: str) -> bool:
        """Whether ``stage`` finished in an earlier (or this) run."""
        return stage in self.state["finished"]

    def mark(self, stage: str, seconds: float, objective: list[float] | None = None) -> None:
        """Record ``stage`` as finished (after its files are written)."""
        if stage not in self.state["finished"]:
            self.state["finished"].append(stage)
        self.state["seconds"][stage] = round(seconds, 3)
        if objective is not None:
            self.state["objective"][stage] = [round(v, 6) for v in objective]
        atomic_write_text(self.path / "state.json", json.dumps(self.state, indent=1))

    def file(self, name: str) -> Path:
        """Path of a file in the run directory."""
        return self.path / name

    @contextlib.contextmanager
    def logging_to_file(self, logger_name: str = "viewfinder.dpm.train") -> Iterator[Path]:
        """Append the training loggers' INFO records to ``train.log`` while active."""
        log_path = self.path / "train.log"
        handler = logging.FileHandler(log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        handler.setLevel(logging.INFO)
        logger = logging.getLogger(logger_name)
        old_level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        try:
            yield log_path
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
            handler.close()
