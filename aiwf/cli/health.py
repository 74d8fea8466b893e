"""``aiwf health``: one sweep of the stack, as a table or JSON; non-zero exit when unhealthy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from aiwf.cli.context import AppContext
from aiwf.errors import HealthError


def health(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    watch: Annotated[
        float | None, typer.Option("--watch", help="Repeat every SECONDS until interrupted.")
    ] = None,
    prometheus: Annotated[
        Path | None,
        typer.Option("--prometheus", help="Also write node-exporter textfile metrics here."),
    ] = None,
) -> None:
    """Containers, HTTP probes, WebSocket, certificate, disk space and backup age, in parallel."""
    from rich.table import Table

    from aiwf import health as sweep_module
    from aiwf.files import write_atomic

    app = AppContext.of(ctx)
    config = app.config
    while True:
        results = sweep_module.sweep(config)
        if prometheus is not None:
            text = sweep_module.to_prometheus(config, results)
            write_atomic(prometheus, text.encode())
        if json_output:
            app.print_json(sweep_module.as_json(results))
        else:
            table = Table(title=f"health of {config.project}")
            for column in ("check", "target", "state", "detail"):
                table.add_column(column)
            for result in results:
                state = "[green]ok[/green]" if result.ok else "[red]FAIL[/red]"
                table.add_row(result.check, result.target, state, result.detail)
            app.console.print(table)
        failed = [f"{result.check} {result.target}" for result in results if not result.ok]
        if watch is None:
            break
        time.sleep(watch)
    if failed:
        raise HealthError(f"unhealthy: {', '.join(failed)}")


def register(app: typer.Typer) -> None:
    app.command("health")(health)
