"""Engine commands: base-images, build, up, down, restart, rebuild, ps, logs, exec, history.

Each command is thin: it loads the config, asks :mod:`aiwf.engine` for a plan or an action and
prints the result. docker-py is imported only inside the engine functions these call.
"""

from __future__ import annotations

from typing import Annotated

import typer

from aiwf.cli.context import AppContext


def base_images(
    ctx: typer.Context,
    kind: Annotated[
        str, typer.Option("--kind", help="Which base image: python or nginx (the same image).")
    ] = "python",
) -> None:
    """Build the local Debian base image when the engine lacks it; print its tag."""
    from aiwf.engine.base_images import ensure_base_image, find_base_image
    from aiwf.engine.docker_client import connect

    app = AppContext.of(ctx)
    client = connect()
    found = find_base_image(client, kind)
    if found:
        app.console.print(f"{found} (present)")
        return
    with app.console.status("building the local base image") as status:
        tag = ensure_base_image(
            client, kind, progress=lambda line: status.update(f"base image: {line[:100]}")
        )
    app.console.print(f"{tag} (built)")


def register(app: typer.Typer) -> None:
    app.command("base-images")(base_images)
