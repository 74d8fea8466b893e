"""``aiwf render``: write nginx.conf, compose.yaml and logrotate.conf from the settings.

``aiwf up`` renders the same files itself; this command shows them or writes them elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiwf.cli.context import AppContext

_STYLE = {"created": "green", "changed": "yellow", "unchanged": "dim"}
_DRY_RUN_WORDS = {"created": "would create", "changed": "would change", "unchanged": "unchanged"}


def render(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder to write to (default: <data_dir>/rendered)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="List what would be written and what differs; write nothing."
        ),
    ] = False,
) -> None:
    """Render the stack's files; report each as created, changed or unchanged."""
    from aiwf.render import compare_rendered, render_all, write_rendered
    from aiwf.stack import rendered_dir

    app = AppContext.of(ctx)
    config = app.config
    folder = out or Path(rendered_dir(config))
    files = render_all(config)
    results = compare_rendered(files, folder) if dry_run else write_rendered(files, folder)
    for result in results:
        state = result.state.value
        word = _DRY_RUN_WORDS[state] if dry_run else state
        app.console.print(f"[{_STYLE[state]}]{word}[/] {result.path}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("render")(render)
