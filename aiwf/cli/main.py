"""Entry point of the ``aiwf`` command: global options, command discovery, the error path.

Every failure reaches the user as one line on stderr and a non-zero exit status; ``AIWF_DEBUG=1``
shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path
from typing import Annotated

import typer

import aiwf.cli
from aiwf import __version__
from aiwf.cli.context import AppContext
from aiwf.errors import AiwfError, ConfigError

app = typer.Typer(
    name="aiwf",
    help="Deploy and operate the ai-workflow stack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aiwf {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            "-i",
            help="pyinfra inventory holding the settings (default: inventory/local.py).",
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Host of the inventory whose settings apply.")
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    """Deploy and operate the ai-workflow stack."""
    ctx.obj = AppContext(inventory=inventory, host=host)


def _register_commands() -> None:
    for module in pkgutil.iter_modules(aiwf.cli.__path__):
        if module.name in ("main", "context"):
            continue
        loaded = importlib.import_module(f"aiwf.cli.{module.name}")
        register = getattr(loaded, "register", None)
        if callable(register):
            register(app)


def main() -> None:
    """Run the CLI; translate every :class:`AiwfError` into one line and its exit status."""
    _register_commands()
    try:
        app(standalone_mode=False)
    except AiwfError as error:
        if os.environ.get("AIWF_DEBUG") == "1":
            raise
        if isinstance(error, ConfigError) and len(error.problems) > 1:
            typer.echo(
                f"aiwf: {len(error.problems)} configuration problems in {error.source}:", err=True
            )
            for problem in error.problems:
                typer.echo(f"  {problem}", err=True)
        else:
            typer.echo(f"aiwf: {error}", err=True)
        sys.exit(error.exit_code)
    except typer.Abort:
        typer.echo("aiwf: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("aiwf: interrupted", err=True)
        sys.exit(130)
    except Exception as error:  # click's usage errors and the like
        import click

        if isinstance(error, click.exceptions.Exit):
            sys.exit(error.exit_code)
        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        if os.environ.get("AIWF_DEBUG") == "1":
            raise
        typer.echo(
            f"aiwf: unexpected error: {type(error).__name__}: {error} (AIWF_DEBUG=1 shows where)",
            err=True,
        )
        sys.exit(1)
