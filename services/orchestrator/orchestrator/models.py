"""Pydantic models: the ticket as served to the dashboard, and what the daemon stores with it.

``Ticket`` is the public JSON contract (one shape for every list). ``TicketRecord`` adds the
bookkeeping the daemon persists (upstream project, retry attempts, pending tracker updates).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


def utcnow() -> datetime:
    """Timezone-aware now; every timestamp the daemon writes is UTC."""
    return datetime.now(UTC)


class TicketStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    ACTIVE = "active"
    OVERDUE = "overdue"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


RUNNING_STATUSES = frozenset({TicketStatus.ACTIVE, TicketStatus.OVERDUE})
RETRYABLE_STATUSES = frozenset({TicketStatus.FAILED, TicketStatus.INTERRUPTED})

Priority = Literal["urgent", "high", "medium", "low", "none"]
TrackerOperation = Literal["start", "comment", "complete"]


class TrackerSync(BaseModel):
    """Whether the upstream tracker has been told what happened to the ticket."""

    state: Literal["ok", "pending", "failed", "none"] = "none"
    error: str | None = None
    attempts: int = 0


class TicketFields(BaseModel):
    """What every source knows about a ticket; shared by the upstream copy and the API shape."""

    id: str
    identifier: str
    title: str
    description: str = ""
    priority: Priority = "none"
    labels: list[str] = Field(default_factory=list)
    state: str = ""
    state_group: str | None = None
    url: str | None = None
    source: Literal["plane", "local"]
    created_at: datetime | None = None
    updated_at: datetime | None = None


class UpstreamTicket(TicketFields):
    """A ticket as a source reports it, before the daemon adds its own status."""

    project_id: str | None = None
    assignees: list[str] = Field(default_factory=list)


class Commit(BaseModel):
    """One commit of a ticket's branch: the full hash and the first line of its message."""

    sha: str
    subject: str


class Worktree(BaseModel):
    """Where a ticket's agent works when a repository is configured (paths as the sandbox sees
    them), kept so the finish and cleanup jobs find it even after the settings changed."""

    path: str
    mirror: str
    base_branch: str


class Ticket(TicketFields):
    """The ticket shape of the HTTP API (see the API contract)."""

    status: TicketStatus = TicketStatus.PENDING
    session_id: str | None = None
    session_name: str | None = None
    approved_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    summary: str | None = None
    tracker_sync: TrackerSync = Field(default_factory=TrackerSync)
    error: str | None = None
    agent_exit_status: int | None = Field(
        default=None,
        description="Exit status of the agent's command when its session ended without a "
        "completion; null when unknown (the session was killed or vanished).",
    )
    agent_output: str | None = Field(
        default=None,
        description="The last screen of that ended session (at most 4000 characters), which "
        "usually names why the agent stopped.",
    )
    branch: str | None = Field(
        default=None,
        description="The git branch the ticket's work is on (set when its session starts, "
        "confirmed on completion); null without a configured repository.",
    )
    commits: list[Commit] = Field(
        default_factory=list,
        description="Commits of the branch since it left the base branch, oldest first.",
    )
    diffstat: str | None = Field(
        default=None, description="`git diff --stat` of the branch against its fork point."
    )
    change_error: str | None = Field(
        default=None,
        description="Why the change of a completed ticket could not be recorded; the ticket "
        "is completed all the same.",
    )


class TicketRecord(Ticket):
    """A ticket plus what the daemon must remember about it across restarts."""

    project_id: str | None = None
    attempt: int = 0
    tracker_ops: list[TrackerOperation] = Field(default_factory=list)
    next_tracker_try: datetime | None = None
    worktree: Worktree | None = None
    # Completed, but the finish job has not recorded the change yet: the tracker comment, which
    # carries the change, waits; after a restart the job runs again.
    change_pending: bool = False

    @classmethod
    def from_upstream(cls, upstream: UpstreamTicket) -> TicketRecord:
        return cls(**upstream.model_dump(exclude={"assignees"}))

    def refresh_from(self, upstream: UpstreamTicket) -> None:
        """Take over the upstream fields of a newer copy, keeping the daemon's own fields."""
        for name, value in upstream.model_dump(exclude={"assignees"}).items():
            setattr(self, name, value)

    def public(self) -> Ticket:
        return Ticket.model_validate(self.model_dump(include=set(Ticket.model_fields)))


class TicketList(BaseModel):
    tickets: list[Ticket]
    count: int


class TicketEnvelope(BaseModel):
    ticket: Ticket


class TicketChange(BaseModel):
    """``GET /api/tickets/{id}/change``: what the ticket's agent changed, as git saw it."""

    branch: str
    commits: list[Commit]
    diffstat: str
    patch: str = Field(description="`git diff` against the fork point, cut at 1 MiB.")


class Health(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    tmux_service: bool
    pending_count: int
    active_count: int
    completed_count: int
    source: Literal["plane", "local"]
    problems: list[str]
    agent_credential: Literal["api_key", "login", "none", "unknown"]
    agent_ready: bool


class ErrorDetail(BaseModel):
    detail: str
