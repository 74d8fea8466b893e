"""``aiwf deploy``: put the stack on the hosts of an inventory with pyinfra (``deploy.py``).

Every selected host's settings are validated first, before any connection, so a bad value stops
the deploy with its field named; then pyinfra runs ``deploy.py`` on all hosts in parallel::

    aiwf deploy --inventory inventory/production.py --dry
    aiwf deploy --inventory inventory/production.py --limit ai.example.com
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from aiwf.cli.context import AppContext
from aiwf.errors import ConfigError, DeployError, UsageError


def validate_inventory(inventory: Path, limit: str | None) -> list[str]:
    """The names of the hosts to deploy, after validating each one's settings (no connection)."""
    from aiwf.config import validate
    from aiwf.deploy.settings import DEPLOY_KEY, DeploySettings
    from aiwf.inventory import read_hosts, settings_for_host

    if not inventory.is_file():
        raise ConfigError([f"{inventory}: inventory file not found; pass an existing --inventory"])
    hosts = read_hosts(inventory)
    chosen = [item for item in hosts if limit is None or item.name == limit]
    if not chosen:
        names = ", ".join(item.name for item in hosts) or "none"
        raise UsageError(f"--limit {limit}: no such host in {inventory} (hosts: {names})")
    for item in chosen:
        settings, source = settings_for_host(inventory, item.name)
        validate(settings, source)
        DeploySettings.from_host_data(item.data.get(DEPLOY_KEY), source)
    return [item.name for item in chosen]


def pyinfra_command(inventory: Path, dry: bool, limit: str | None, json_output: bool) -> list[str]:
    """The pyinfra command line that runs ``deploy.py`` (``-y``: no confirmation prompt)."""
    from aiwf.paths import project_root

    command = [sys.executable, "-m", "pyinfra", str(inventory.resolve())]
    command.append(str(project_root() / "deploy.py"))
    command.append("--dry" if dry else "-y")
    if limit:
        command += ["--limit", limit]
    if json_output:
        command.append("--json")
    return command


def deploy(
    ctx: typer.Context,
    dry: Annotated[
        bool, typer.Option("--dry", help="Show what would change; change nothing.")
    ] = False,
    limit: Annotated[str | None, typer.Option("--limit", help="Deploy this host only.")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="pyinfra's plan and results as JSON on stdout.")
    ] = False,
) -> None:
    """Deploy the stack onto the hosts of --inventory with pyinfra, in parallel."""
    from aiwf.paths import project_root

    app = AppContext.of(ctx)
    chosen = app.inventory
    if chosen is None:
        raise UsageError("aiwf deploy needs --inventory PATH (a pyinfra inventory of your hosts)")
    hosts = validate_inventory(chosen, limit)
    if not json_output:
        app.err.print(f"deploying to {', '.join(hosts)}" + (" (dry run)" if dry else ""))
    result = subprocess.run(
        pyinfra_command(chosen, dry, limit, json_output), cwd=project_root(), check=False
    )
    if result.returncode != 0:
        raise DeployError(
            f"the deploy did not complete on every host (pyinfra exit status {result.returncode}); "
            "the lines above name each problem"
        )


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
