"""``aiwf config-reference``: print or write the settings reference (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def config_reference(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the reference to this file instead of printing."),
    ] = None,
) -> None:
    """Generate the configuration reference from the settings models."""
    from aiwf.docs import configuration_reference
    from aiwf.files import write_atomic

    text = configuration_reference()
    if out is None:
        typer.echo(text, nl=False)
        return
    write_atomic(out, text.encode())
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("config-reference")(config_reference)
