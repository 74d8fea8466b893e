"""Short jobs in the agent sandbox: a tmux-sessions session whose command is a script.

The orchestrator's container must not run git on the agents' repositories, so git work that is
not the agent's own (committing a completed ticket's work, removing a worktree) runs as a
session of its own. tmux-sessions lists a session whose command exited as ``alive: false`` with
its ``exit_status`` and ``last_output``; ``run_job`` waits for that, bounded, and then deletes
the session.

Example::

    outcome = await run_job(tmux, "finish-WEB-12-1", "sh -c 'git status'", "/workspace")
    if not outcome.succeeded:
        print(outcome.reason("the finish job"))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.tmux_client import TmuxClient, TmuxServiceError

log = logging.getLogger(__name__)

JOB_TIMEOUT = 120.0
POLL_INTERVAL = 0.25
REASON_LIMIT = 300


def last_line(output: str | None) -> str:
    """The last non-empty line of a screen, which usually names why a command stopped.

    >>> last_line("$ run\\nfatal: no such repository\\n\\n")
    'fatal: no such repository'
    """
    lines = (line.strip() for line in reversed((output or "").splitlines()))
    return next((line for line in lines if line), "")[:REASON_LIMIT]


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: its exit status (None when unknown) and its last screen."""

    exit_status: int | None
    output: str | None
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0

    def reason(self, job: str) -> str:
        """One sentence for the ticket: ``the finish job exited with status 1: fatal: ...``."""
        if self.timed_out:
            return f"{job} did not end within {JOB_TIMEOUT:.0f} s"
        if self.exit_status is None:
            return f"{job} ended without an exit status (killed, or its session vanished)"
        words = last_line(self.output)
        reason = f"{job} exited with status {self.exit_status}"
        return f"{reason}: {words}" if words else reason


async def _find(tmux: TmuxClient, key: str, field: str) -> dict[str, Any] | None:
    for session in await tmux.list():
        if session.get(field) == key:
            return session
    return None


async def run_job(
    tmux: TmuxClient, name: str, command: str, cwd: str, *, timeout: float = JOB_TIMEOUT
) -> JobOutcome:
    """Run ``command`` as session ``name`` in the sandbox and wait (at most ``timeout`` s).

    A live session of that name is the same job started before a restart: it is waited for
    rather than started twice. The session is deleted afterwards, whatever happened.
    Raises ``TmuxServiceError`` when the job cannot be started.
    """
    running = await _find(tmux, name, "name")
    if running is None or not running.get("alive", True):
        running = await tmux.create(name, command, cwd, {})
    session_id = str(running.get("id") or name)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                session = await _find(tmux, session_id, "id")
            except TmuxServiceError as exc:
                log.warning("listing sessions for job %s failed: %s", name, exc)
            else:
                if session is None:
                    return JobOutcome(None, None)
                if not session.get("alive", True):
                    status = session.get("exit_status")
                    output = session.get("last_output")
                    return JobOutcome(
                        status if isinstance(status, int) else None,
                        output if isinstance(output, str) else None,
                    )
            if time.monotonic() > deadline:
                return JobOutcome(None, None, timed_out=True)
            await asyncio.sleep(POLL_INTERVAL)
    finally:
        with contextlib.suppress(TmuxServiceError):
            await tmux.kill(session_id)
