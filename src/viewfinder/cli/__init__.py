"""The ``viewfinder`` command line: a thin layer over the library (click + rich).

Each subcommand group lives in its own module (``viewfinder.cli.<name>``, exposing
a click command or group named ``cli``) and imports the library lazily inside its
commands, so ``viewfinder --help`` stays fast. Any
:class:`~viewfinder.errors.ViewfinderError` becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from viewfinder import __version__
from viewfinder.errors import ViewfinderError

__all__ = ["cli", "main"]

# Subcommand modules, in help order. A module not written yet is skipped.
_SUBCOMMANDS = ("media", "models", "convert", "bench", "faces", "detect", "dpm", "eval", "train")


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
    """Run the CLI and return its exit code: 0 ok, 1 finished with failures, 2 bad input."""
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
