"""The ``viewfinder`` command line: a thin layer over the library (click + rich).

Each subcommand group lives in its own module (``viewfinder.cli.<name>``, exposing
a click command or group named ``cli``) and imports the library lazily inside its
commands, so ``viewfinder --help`` stays fast. Any
:class:`~viewfinder.errors.ViewfinderError` becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import sys
import threading

import click

from viewfinder import __version__
from viewfinder.errors import ViewfinderError

__all__ = ["cli", "main"]

# Subcommand modules, in help order. A module not written yet is skipped.
_SUBCOMMANDS = ("media", "models", "convert", "bench", "faces", "detect", "dpm", "eval", "train", "serve")


class _LazyGroup(click.Group):
    """Loads each subcommand module only when it is listed or invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in _SUBCOMMANDS if self._load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name) if cmd_name in _SUBCOMMANDS else None

    @staticmethod
    def _load(name: str) -> click.Command | None:
        try:
            module = importlib.import_module(f"viewfinder.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"viewfinder.cli.{name}":
                return None
            raise
        return module.cli


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="viewfinder")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Vision pipelines for production: decode, detect, align, track, evaluate, encode."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 finished with failures, 2 bad input.

    Run as the program (``argv`` None: the ``viewfinder`` script, ``python -m
    viewfinder``) the process ends as soon as the command is done (:func:`_fast_exit`).
    """
    code = _run(argv)
    if argv is None:
        _fast_exit(code)
    return code


def _fast_exit(code: int) -> None:
    """End the process without the interpreter's teardown.

    Freeing every module, session and numba's compiler state at exit cost 0.2 s
    (``faces`` on a photo) to 0.3 s (``dpm detect``) of CPU, after the command had
    finished and closed its outputs. What must still happen does: work queued on thread
    pools finishes (OpenVINO's background compiles write whole blobs), ``atexit``
    handlers run (logging, temporary folders), stdout and stderr are flushed. Threads
    of another kind still running, a profiler or tracer (``python -m cProfile``,
    coverage), or ``VIEWFINDER_CLEAN_EXIT=1`` keep the ordinary exit.
    """
    if (sys.getprofile() is not None or sys.gettrace() is not None
            or os.environ.get("VIEWFINDER_CLEAN_EXIT")):
        return
    pools = sys.modules.get("concurrent.futures.thread")
    join_pools = getattr(pools, "_python_exit", None) if pools is not None else None
    if pools is not None and join_pools is None:
        return  # another Python: its pools join at the ordinary exit
    if join_pools is not None:
        join_pools()  # queued work runs to its end, idle workers stop
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (``| head``)
            stream.flush()
    os._exit(code)


def _run(argv: list[str] | None) -> int:
    try:
        result = cli.main(args=argv, prog_name="viewfinder", standalone_mode=False)
    except ViewfinderError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
