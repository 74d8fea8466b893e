"""``aiwf logrotate``: install the stack's logrotate file after ``logrotate -d`` accepts it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiwf.cli.context import AppContext

logrotate_app = typer.Typer(help="Rotation of the stack's log files.", no_args_is_help=True)


@logrotate_app.command("install")
def install(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where logrotate reads its files.")
    ] = Path("/etc/logrotate.d"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
) -> None:
    """Render the logrotate file, check it with ``logrotate -d``, write <dir>/<project>."""
    from aiwf import logrotate

    app = AppContext.of(ctx)
    plan = logrotate.plan_install(app.config, directory, logrotate.docker_root())
    if dry_run:
        for step in plan.steps():
            app.console.print(f"would {step}" if plan.state != "unchanged" else step)
        return
    logrotate.install(plan)
    app.console.print(f"{plan.path}: {plan.state}")


@logrotate_app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the rendered logrotate file."""
    from aiwf import logrotate

    app = AppContext.of(ctx)
    typer.echo(logrotate.render(app.config, logrotate.docker_root()), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(logrotate_app, name="logrotate")
