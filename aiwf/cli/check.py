"""``aiwf check``: validate the settings and print every problem with its field path."""

from __future__ import annotations

import typer

from aiwf.cli.context import AppContext


def check(ctx: typer.Context) -> None:
    """Validate the configuration; exit status 2 and every problem listed when it is bad.

    Also reads the agent's key (from its variable or file) so a missing one is named now, not
    at the first approval.
    """
    app = AppContext.of(ctx)
    config = app.config
    agent = config.agent
    from aiwf.engine.agent import read_key

    read_key(agent.api_key_env, agent.api_key_file, "agent")  # a missing key stops here
    services = ", ".join(config.enabled_services())
    app.console.print(f"configuration is valid: project {config.project}, services: {services}")
    if agent.credential == "none":
        app.console.print(
            "agent: no credential configured, so approvals will be refused; set "
            "agent.api_key_env, agent.api_key_file or agent.credentials_file"
        )
    else:
        app.console.print(
            f"agent: Claude Code {agent.claude_code_version} in the {agent.runtime} as uid "
            f"{agent.uid}, credential: {agent.credential}, permission mode: "
            f"{agent.permission_mode}"
        )


def register(app: typer.Typer) -> None:
    app.command("check")(check)
