"""The agent's prompt (a Jinja template) and the shell command that starts the agent.

``AGENT_COMMAND`` is a command line with placeholders ``{prompt}``, ``{ticket_id}`` and
``{completion_file}``; each is replaced by its value quoted for the shell, so a ticket title can
never inject shell syntax.

>>> build_command("claude {prompt}", {"prompt": "it's done"})
"claude 'it'\\"'\\"'s done'"
"""

from __future__ import annotations

import shlex
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, PackageLoader, StrictUndefined, Template

from orchestrator.models import TicketRecord


def load_template(template_file: Path | None) -> Template:
    """The configured template file, or the packaged default."""
    if template_file is not None:
        environment = Environment(
            loader=FileSystemLoader(template_file.parent),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        return environment.get_template(template_file.name)
    environment = Environment(
        loader=PackageLoader("orchestrator", "templates"), undefined=StrictUndefined
    )
    return environment.get_template("prompt.md.j2")


def render_prompt(template: Template, ticket: TicketRecord, completion_file: str) -> str:
    return template.render(ticket=ticket.public(), completion_file=completion_file).strip()


def build_command(template: str, values: dict[str, str]) -> str:
    command = template
    for name, value in values.items():
        command = command.replace("{" + name + "}", shlex.quote(value))
    return command
