"""The one context object every command shares: where the settings come from, and output."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from aiwf.config import StackConfig, load_config


@dataclass
class AppContext:
    """Options of the ``aiwf`` command itself, and the validated config loaded on first use.

    Example, in a command::

        def ps(ctx: typer.Context) -> None:
            app = AppContext.of(ctx)
            for name in app.config.enabled_services(): ...
    """

    inventory: Path | None = None
    host: str | None = None
    #: The arguments ``aiwf`` was run with (after the command name's global options moved).
    command_line: tuple[str, ...] = ()
    console: Console = field(default_factory=lambda: Console(highlight=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

    @cached_property
    def config(self) -> StackConfig:
        """The stack's settings; raises :class:`aiwf.errors.ConfigError` before anything runs."""
        return load_config(self.inventory, self.host)

    @staticmethod
    def of(ctx: typer.Context) -> AppContext:
        app = ctx.find_root().obj
        if not isinstance(app, AppContext):  # a command module called without the root callback
            app = AppContext()
            ctx.find_root().obj = app
        return app

    def print_json(self, value: Any) -> None:
        """Machine-readable output: one JSON document on stdout."""
        sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")
