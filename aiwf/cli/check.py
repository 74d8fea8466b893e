"""``aiwf check``: validate the settings and print every problem with its field path."""

from __future__ import annotations

import typer

from aiwf.cli.context import AppContext


def check(ctx: typer.Context) -> None:
    """Validate the configuration; exit status 2 and every problem listed when it is bad."""
    app = AppContext.of(ctx)
    config = app.config
    services = ", ".join(config.enabled_services())
    app.console.print(f"configuration is valid: project {config.project}, services: {services}")


def register(app: typer.Typer) -> None:
    app.command("check")(check)
