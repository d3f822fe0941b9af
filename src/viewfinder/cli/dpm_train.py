"""``viewfinder dpm train`` and ``viewfinder dpm eval``: DPM training on a VOC set.

The ``dpm`` group (:mod:`viewfinder.cli.dpm`) calls :func:`register` to add these
commands. Every :class:`~viewfinder.dpm.train.params.TrainParams` field is an option,
with its voc-release default and source in the help.

Registering imports nothing of the library: the options are read from ``TrainParams``,
and importing :mod:`viewfinder.dpm.train.params` imports :mod:`viewfinder.dpm` (numba,
scipy: 0.7 s), so each command is built only when it is invoked or its own help is
shown (:class:`_Deferred`); ``viewfinder --help`` and ``viewfinder dpm --help`` stay fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click

__all__ = ["register"]

_TRAIN_HELP = "Train a deformable part model (voc-release latent SVM) for one class."
_EVAL_HELP = "Held-out AP (VOC2007 11-point) of a trained model."


class _Deferred(click.Command):
    """Stands for a command that ``build`` makes on first use.

    Listing it (``viewfinder dpm --help``) needs only its name and help; parsing its
    arguments, invoking it or showing its own help builds the real command, whose
    context then runs it.
    """

    def __init__(self, name: str, build: Callable[[], click.Command], help_text: str) -> None:
        super().__init__(name, help=help_text)
        self._build = build
        self._real: click.Command | None = None

    @property
    def real(self) -> click.Command:
        """The real command (built once)."""
        if self._real is None:
            self._real = self._build()
        return self._real

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        return self.real.make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        return self.real.invoke(ctx)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return self.real.get_params(ctx)

    def get_usage(self, ctx: click.Context) -> str:
        return self.real.get_usage(ctx)

    def get_help(self, ctx: click.Context) -> str:
        return self.real.get_help(ctx)

    def to_info_dict(self, ctx: click.Context) -> dict[str, Any]:
        return self.real.to_info_dict(ctx)


def _param_options(func: Any) -> Any:
    """Add one ``--name`` option per training parameter (default: the dataclass's)."""
    from viewfinder.dpm.train.params import PARAM_NOTES, TrainParams

    for f in reversed(dataclasses.fields(TrainParams)):
        names = [f"--{f.name.lower().replace('_', '-')}"]
        if f.name in ("C", "J"):
            names.insert(0, f"-{f.name}")
        kind = {"int": int, "float": float, "str": str, "bool": bool}[str(f.type)]
        help_text = f"{PARAM_NOTES.get(f.name, '')} [default: {f.default}]"
        if kind is bool:
            flag = f.name.replace("_", "-")
            opt = click.option(f"--{flag}/--no-{flag}", f"p_{f.name}", default=None,
                               help=help_text)
        else:
            opt = click.option(*names, f"p_{f.name}", type=kind, default=None, help=help_text)
        func = opt(func)
    return func


def _params(small: bool, options: dict[str, Any]):
    from viewfinder.dpm.train.params import TrainParams

    chosen = {k[2:]: v for k, v in options.items() if k.startswith("p_") and v is not None}
    return TrainParams.small(**chosen) if small else TrainParams(**chosen)


class _StageProgress:
    """Rich progress: one line per stage with objective and cache size."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}
        self.state: dict[str, dict[str, Any]] = {}

    def __call__(self, stage: str, info: dict[str, Any]) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=None)
            self.state[stage] = {}
        st = self.state[stage]
        st.update({k: v for k, v in info.items() if k in ("objective", "cache", "positives")})
        task = self.tasks[stage]
        text = stage
        if "objective" in st:
            text += f"  objective {st['objective']:.5f}"
        if "cache" in st:
            text += f"  cache {st['cache']}"
        if "mined" in info:
            self.progress.update(task, total=info["images"], completed=info["mined"])
        if info.get("done"):
            text += f"  ({info['seconds']:.1f} s)"
            total = self.progress.tasks[task].total or 1
            self.progress.update(task, total=total, completed=total)
        self.progress.update(task, description=text)


def _train_command() -> click.Command:
    from viewfinder.cli._shared import engine_options

    @click.command("train", help=_TRAIN_HELP)
    @click.option("--voc", "voc", required=True, type=click.Path(), help="VOC-layout set.")
    @click.option("--class", "cls", required=True, help="Class to train (as annotated).")
    @click.option("--out", "out", required=True, type=click.Path(), help="Run directory "
                  "(a rerun resumes after the last finished stage).")
    @click.option("--split", default="train", show_default=True, help="Training image set.")
    @click.option("--small", is_flag=True, help="Small-set preset (1 component, 4 parts, "
                  "interval 4) before the options below.")
    @_param_options
    @engine_options
    def train_cmd(voc: str, cls: str, out: str, split: str, small: bool, workers: int,
                  engine: str, address: str | None, **options: Any) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        from viewfinder.dpm.train.stages import train

        params = _params(small, options)
        console = Console(stderr=True)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      console=console, transient=False) as bar:
            result = train(voc, cls, out, params, split=split, progress=_StageProgress(bar),
                           workers=workers, engine=engine, address=address)
        if result.resumed_from:
            click.echo(f"resumed after stage {result.resumed_from}")
        for stage, secs in result.stage_seconds.items():
            obj = result.objective.get(stage)
            tail = f"  final objective {obj[-1]:.6f}" if obj else ""
            click.echo(f"{stage:14s} {secs:8.1f} s{tail}")
        click.echo(f"model: {result.path / 'final.npz'}  ({result.model.to_model().describe()})")

    return train_cmd


def _eval_command() -> click.Command:
    from viewfinder.cli._shared import engine_options

    @click.command("eval", help=_EVAL_HELP)
    @click.option("--voc", "voc", required=True, type=click.Path(), help="VOC-layout set.")
    @click.option("--model", "model_path", required=True, type=click.Path(),
                  help="Run directory (its final.npz) or a trained .npz.")
    @click.option("--split", default="test", show_default=True, help="Image set to evaluate.")
    @click.option("--class", "cls", default=None, help="Class name (default: the model's).")
    @click.option("--score", "threshold", type=float, default=None,
                  help="Score threshold (default: min(model threshold, -1)).")
    @engine_options
    def eval_cmd(voc: str, model_path: str, split: str, cls: str | None,
                 threshold: float | None, workers: int, engine: str,
                 address: str | None) -> None:
        from rich.console import Console
        from rich.progress import Progress

        from viewfinder.dpm.train.evaluate import evaluate, load_trained

        model = load_trained(model_path)
        with Progress(console=Console(stderr=True)) as bar:
            task = bar.add_task(f"detecting {model.name}", total=None)
            res = evaluate(model, voc, split, cls, threshold,
                           progress=lambda d, t: bar.update(task, completed=d, total=t),
                           workers=workers, engine=engine, address=address)
        click.echo(f"{res.cls} on {res.split}: AP {res.ap:.4f}  ({res.images} images, "
                   f"{res.ground_truth} objects, {res.detections} detections, "
                   f"{res.seconds:.1f} s)")

    return eval_cmd


def register(group: click.Group) -> None:
    """Add ``train`` and ``eval`` to the ``viewfinder dpm`` group (built on first use)."""
    group.add_command(_Deferred("train", _train_command, _TRAIN_HELP))
    group.add_command(_Deferred("eval", _eval_command, _EVAL_HELP))
