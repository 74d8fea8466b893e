"""``aiwf backup``, ``aiwf backups`` and ``aiwf restore``: volume archives, verified.

``aiwf backup [VOLUME...]`` archives volumes (all by default); ``aiwf backup verify ARCHIVE`` and
``aiwf backup schedule`` are its subcommands. Every command plans first: ``--dry-run`` prints the
plan and changes nothing.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from aiwf.cli.context import AppContext


class DefaultCommandGroup(TyperGroup):
    """A group whose arguments, when they name no subcommand, go to its ``create`` command.

    So ``aiwf backup plane-orchestrator-data --out /srv`` is ``aiwf backup create ...`` while
    ``aiwf backup verify X`` still reaches ``verify``.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["create", *args]
        return super().parse_args(ctx, args)


backup_app = typer.Typer(
    cls=DefaultCommandGroup, help="Back up the stack's volumes (all by default)."
)

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]


def _terminate_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so paused services are resumed and partial files removed."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@backup_app.command("create", hidden=True)
def create(
    ctx: typer.Context,
    volumes: Annotated[list[str] | None, typer.Argument(help="Volumes (default: all).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory (default: paths.backup_dir).")
    ] = None,
    no_prune: Annotated[bool, typer.Option("--no-prune", help="Keep every old archive.")] = False,
    dry_run: DryRun = False,
) -> None:
    """Archive volumes, verify each archive, then prune by retention."""
    from aiwf.backup import operations

    app = AppContext.of(ctx)
    plan = operations.plan_backup(app.config, list(volumes or []), out, prune=not no_prune)
    if dry_run:
        for step in plan.steps():
            app.console.print(f"would {step}")
        return
    _terminate_as_interrupt()
    made = operations.apply_backup(app.config, plan, progress=app.console.print)
    for archive in made:
        app.console.print(f"[green]backup verified[/green] {archive}")


@backup_app.command("verify")
def verify(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(help="The archive to check.")],
    restore_test: Annotated[
        bool, typer.Option("--restore-test", help="Also restore into a scratch volume and check.")
    ] = False,
) -> None:
    """Check every checksum against the archive's manifest (exit 1 with the reason if not)."""
    from aiwf.backup import operations

    app = AppContext.of(ctx)
    result = operations.verify_archive(app.config, archive)
    entries = len(result.manifest["entries"])
    app.console.print(f"[green]ok[/green] {archive}: {entries} entries match the manifest")
    if restore_test:
        operations.restore_test(app.config, archive, progress=app.console.print)


@backup_app.command("schedule")
def schedule(
    ctx: typer.Context,
    install: Annotated[
        bool, typer.Option("--install", help="Write the units and enable the timer.")
    ] = False,
    directory: Annotated[Path, typer.Option("--dir", help="Where the unit files go.")] = Path(
        "/etc/systemd/system"
    ),
) -> None:
    """Print (or install) the systemd service and timer that run the nightly backup."""
    from aiwf.backup import schedule as units

    app = AppContext.of(ctx)
    rendered = units.render_units(app.config, app.inventory, app.host)
    if not install:
        for name, text in rendered.items():
            typer.echo(f"# {directory / name}\n{text}")
        return
    for line in units.install_units(rendered, directory):
        app.console.print(line)


def backups(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Directory to list.")] = None,
) -> None:
    """List this stack's archives with size, age and verification state."""
    from rich.table import Table

    from aiwf.backup import store

    app = AppContext.of(ctx)
    directory = out or app.config.paths.backup_dir
    assert directory is not None
    archives = store.list_archives(directory, app.config.project)
    if json_output:
        app.print_json(
            [
                {
                    "archive": str(item.path),
                    "volume": item.volume,
                    "created": item.created.isoformat(),
                    "age_hours": round(item.age.total_seconds() / 3600, 2),
                    "size": item.size,
                    "state": item.state,
                }
                for item in archives
            ]
        )
        return
    table = Table(title=f"backups of {app.config.project} in {directory}")
    for column in ("volume", "created (UTC)", "age", "size", "state", "archive"):
        table.add_column(column)
    colours = {"verified": "green", "unverified": "yellow", "changed": "red"}
    for item in archives:
        hours = item.age.total_seconds() / 3600
        age = f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"
        table.add_row(
            item.volume,
            f"{item.created:%Y-%m-%d %H:%M:%S}",
            age,
            f"{item.size / 1e6:.1f} MB",
            f"[{colours[item.state]}]{item.state}[/{colours[item.state]}]",
            item.path.name,
        )
    app.console.print(table)


def restore(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(help="The archive to restore.")],
    volume: Annotated[
        str | None, typer.Option("--volume", help="Target volume (default: the archive's).")
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Verify, restore into a staging volume, check it, then swap it in (service restarted)."""
    from aiwf.backup import operations

    app = AppContext.of(ctx)
    plan = operations.plan_restore(app.config, archive, volume)
    if dry_run:
        for step in plan.steps():
            app.console.print(f"would {step}")
        return
    _terminate_as_interrupt()
    operations.apply_restore(app.config, plan, progress=app.console.print)
    app.console.print(f"[green]restored[/green] {plan.docker_volume} from {archive}")


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")
    app.command("backups")(backups)
    app.command("restore")(restore)
