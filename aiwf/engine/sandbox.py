"""The running sandbox, asked through the engine: its agents' sessions and its Claude Code.

Recreating the sandbox ends every tmux session in it, agents included, so ``aiwf up`` first asks
its tmux server which sessions run (and for which ticket: tmux-sessions labels each agent session
with ``@aiwf_ticket``) and refuses unless forced. After ``up``, ``claude --version`` is run in the
sandbox as its user, which proves the pinned binary is the one agents get and that the user is
not root::

    refuse_ending_sessions(client, config, plan)   # AiwfError naming the tickets, or None
    check_claude_code(client, config)              # 'Claude Code 2.1.328 answers ... uid 1000'
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiwf.config import StackConfig
from aiwf.engine.exec import exec_output
from aiwf.engine.plan import Action
from aiwf.errors import AiwfError, EngineError
from aiwf.stack import claude_program, tmux_socket

if TYPE_CHECKING:
    import docker

    from aiwf.engine.converge import UpPlan

_FIELDS = "#{session_name}\t#{@aiwf_ticket}\t#{pane_dead}"


@dataclass(frozen=True)
class RunningSession:
    """A live tmux session in the sandbox; ``ticket`` is empty for a web terminal."""

    name: str
    ticket: str

    def __str__(self) -> str:
        return f"{self.name} (ticket {self.ticket})" if self.ticket else self.name


def parse_sessions(listing: str) -> list[RunningSession]:
    """The sessions of a ``list-sessions -F`` listing whose program still runs.

    >>> parse_sessions("claude-EX-1-1\\tEX-1\\t0\\nold\\t\\t1")
    [RunningSession(name='claude-EX-1-1', ticket='EX-1')]
    """
    sessions = []
    for line in listing.splitlines():
        name, _sep, rest = line.partition("\t")
        ticket, _sep, dead = rest.partition("\t")
        if name and dead.strip() != "1":
            sessions.append(RunningSession(name, ticket))
    return sessions


def running_sessions(
    client: docker.DockerClient, config: StackConfig, container: str
) -> list[RunningSession]:
    """The live sessions of the sandbox ``container`` (none when its tmux has none)."""
    command = ["tmux", "-S", str(tmux_socket(config)), "list-sessions", "-F", _FIELDS]
    code, output = exec_output(client, container, command)
    return parse_sessions(output) if code == 0 else []


def refuse_ending_sessions(client: docker.DockerClient, config: StackConfig, plan: UpPlan) -> None:
    """Raise when ``plan`` recreates or removes a running sandbox that has live sessions."""
    step = next((s for s in plan.steps if s.target == "sandbox"), None)
    if step is None or step.action not in (Action.RECREATE, Action.REMOVE_ORPHAN):
        return
    if step.current is None or not step.current.running:
        return
    try:
        sessions = running_sessions(client, config, step.current.id)
    except EngineError:
        return  # a sandbox the engine cannot exec into has no session we could keep
    if sessions:
        listed = ", ".join(str(session) for session in sessions)
        raise AiwfError(
            f"the sandbox would be recreated ({step.reason}), which ends {len(sessions)} "
            f"running session(s): {listed}; let them finish, end them, or run aiwf up --force"
        )


def check_claude_code(client: docker.DockerClient, config: StackConfig) -> str:
    """Run ``claude --version`` where agents run, as their user; a note, or AiwfError.

    In the sandbox through the engine; with ``agent.runtime: host`` on this host as the agent's
    user (``runuser``).
    """
    probe = f"id -u && {claude_program(config)} --version"
    if config.agent.runtime == "sandbox":
        where = config.container_name("sandbox")
        code, output = exec_output(client, where, ["sh", "-c", probe])
    else:
        from aiwf.engine.agent import agent_user_name

        where = "this host"
        user = agent_user_name(config)
        done = subprocess.run(
            ["runuser", "-u", user, "--", "sh", "-c", probe],
            capture_output=True,
            text=True,
            check=False,
        )
        code, output = done.returncode, (done.stdout + done.stderr).strip()
    wanted = config.agent.claude_code_version
    lines = output.splitlines()
    uid = lines[0].strip() if lines else ""
    version = lines[1].strip() if len(lines) > 1 else ""
    if code != 0 or not version.startswith(wanted):
        raise AiwfError(
            f"Claude Code on {where} does not answer as {wanted}: {output or 'no output'}"
        )
    if uid == "0":
        raise AiwfError(f"agents on {where} would run as root; they must run as agent.uid")
    return f"Claude Code {version} answers in the {config.agent.runtime} as uid {uid}"
