"""Entry point of the ``aiwf`` command: global options, command discovery, the error path.

Every failure reaches the user as one line on stderr and a non-zero exit status; ``AIWF_DEBUG=1``
shows the traceback instead.

The settings are loaded and validated before any command runs, so a bad value stops every command
the same way ``aiwf check`` reports it. ``--inventory`` and ``--host`` may be given before or after
the command: ``aiwf check --inventory inventory/production.py`` works like
``aiwf --inventory inventory/production.py check``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol

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
    app_context = ctx.obj if isinstance(ctx.obj, AppContext) else AppContext()
    app_context.inventory, app_context.host = inventory, host
    ctx.obj = app_context
    wants_help = any(arg in ("--help", "-h") for arg in sys.argv[1:])
    if ctx.invoked_subcommand not in CONFIG_FREE_COMMANDS and not wants_help:
        _ = app_context.config  # validate before anything runs; ConfigError exits with status 2


#: Commands that work without (or despite) the stack's settings.
CONFIG_FREE_COMMANDS = frozenset({"config-reference"})
#: Options of the root command that may also follow the command name.
_GLOBAL_OPTIONS = {"--inventory": True, "-i": True, "--host": True}


class _OptionHolder(Protocol):
    opts: list[str]
    secondary_opts: list[str]


def _declared_options(command: Any) -> set[str]:
    """Every option string ``command`` and its subcommands declare themselves."""
    params: list[_OptionHolder] = getattr(command, "params", [])
    names = {opt for param in params for opt in (*param.opts, *param.secondary_opts)}
    for sub in getattr(command, "commands", {}).values():
        names |= _declared_options(sub)
    return names


def hoist_global_options(args: Sequence[str], commands: Mapping[str, Any]) -> list[str]:
    """Move ``--inventory``/``--host`` written after the command name in front of it.

    ``commands`` maps command names to their parsed commands; options a command declares itself
    stay where they are. Example: ``["check", "--inventory", "x.py"]`` becomes
    ``["--inventory", "x.py", "check"]``.
    """
    args = list(args)
    position = 0
    while position < len(args) and args[position].startswith("-"):
        takes_value = _GLOBAL_OPTIONS.get(args[position], False)
        position += 2 if takes_value else 1
    if position >= len(args) or args[position] not in commands:
        return args
    head, command_name, rest = args[:position], args[position], args[position + 1 :]
    own = _declared_options(commands[command_name])
    hoisted: list[str] = []
    kept: list[str] = []
    index = 0
    while index < len(rest):
        arg = rest[index]
        if arg == "--":
            kept += rest[index:]
            break
        name = arg.split("=", 1)[0]
        if name in _GLOBAL_OPTIONS and name not in own:
            width = 1 if "=" in arg else 2
            hoisted += rest[index : index + width]
            index += width
            continue
        kept.append(arg)
        index += 1
    return [*head, *hoisted, command_name, *kept]


def _register_commands() -> None:
    for module in pkgutil.iter_modules(aiwf.cli.__path__):
        if module.name in ("main", "context", "entry"):
            continue
        loaded = importlib.import_module(f"aiwf.cli.{module.name}")
        register = getattr(loaded, "register", None)
        if callable(register):
            register(app)


def _report(error: AiwfError) -> None:
    if isinstance(error, ConfigError) and len(error.problems) > 1:
        where = f" in {error.source}" if error.source else ""
        typer.echo(f"aiwf: {len(error.problems)} configuration problems{where}:", err=True)
        for problem in error.problems:
            typer.echo(f"  {problem}", err=True)
    else:
        typer.echo(f"aiwf: {error}", err=True)


def _is_usage_error(error: Exception) -> bool:
    """Click's own errors (bad option, missing argument): they know how to show themselves.

    Typer ships its own copy of click, so these are recognised by shape, not by class.
    """
    return callable(getattr(error, "show", None)) and isinstance(
        getattr(error, "exit_code", None), int
    )


def run(args: Sequence[str]) -> int:
    """Run the CLI with ``args``; return the exit status (0 on success).

    Every :class:`AiwfError` becomes one line on stderr and its own exit status; any other
    exception becomes one line too, and ``AIWF_DEBUG=1`` lets the traceback through instead.
    """
    _register_commands()
    debug = os.environ.get("AIWF_DEBUG") == "1"
    try:
        command = typer.main.get_command(app)
        args = hoist_global_options(args, getattr(command, "commands", {}))
        result = command.main(
            args=list(args),
            prog_name="aiwf",
            standalone_mode=False,
            obj=AppContext(command_line=tuple(args)),
        )
    except AiwfError as error:
        if debug:
            raise
        _report(error)
        return error.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aiwf: interrupted", err=True)
        return 130
    except Exception as error:
        if _is_usage_error(error):
            error.show()  # type: ignore[attr-defined]
            return int(error.exit_code)  # type: ignore[attr-defined]
        if debug:
            raise
        typer.echo(
            f"aiwf: unexpected error: {type(error).__name__}: {error} (AIWF_DEBUG=1 shows where)",
            err=True,
        )
        return 1
    # Without standalone mode click returns the status of typer.Exit(code) instead of exiting.
    return result if isinstance(result, int) else 0


def main() -> None:
    """The ``aiwf`` console script."""
    sys.exit(run(sys.argv[1:]))
