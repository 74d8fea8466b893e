"""The one interface every ticket source implements, and the selection rules applied to it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Protocol

from orchestrator.models import TicketRecord, UpstreamTicket

TICKET_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


class SourceError(Exception):
    """A source could not be read or updated; the message is one sentence for ``/health``."""


@dataclass
class SyncResult:
    """Tickets that may have changed since the last marks, and the marks to store after them."""

    tickets: list[UpstreamTicket]
    marks: dict[str, str]
    problems: list[str] = field(default_factory=list)


class TicketSource(Protocol):
    kind: Literal["plane", "local"]

    async def fetch_changes(self, marks: dict[str, str]) -> SyncResult:
        """Return the tickets changed after ``marks`` (a source-defined high-water mark map)."""
        ...

    async def mark_started(self, ticket: TicketRecord) -> None: ...

    async def post_comment(self, ticket: TicketRecord, summary: str) -> None: ...

    async def mark_completed(self, ticket: TicketRecord) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class SelectionRules:
    """Which upstream tickets enter the pending queue.

    Empty lists mean "any". State rules match the state's group or its name, case-insensitively;
    a ticket without a state (local files) passes them. Labels match if any configured one is set.

    >>> SelectionRules(labels=("claude",)).matches(UpstreamTicket(
    ...     id="A-1", identifier="A-1", title="t", source="local", labels=["Claude"]))
    True
    """

    state_groups: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    assignee: str = ""

    def matches(self, ticket: UpstreamTicket) -> bool:
        if (self.state_groups or self.state_names) and ticket.state_group is not None:
            in_group = (ticket.state_group or "").lower() in self.state_groups
            in_names = ticket.state.lower() in self.state_names
            if not (in_group or in_names):
                return False
        if self.labels and not {label.lower() for label in ticket.labels} & set(self.labels):
            return False
        return not (self.assignee and self.assignee not in ticket.assignees)
