"""Local folder source: Markdown ticket files with a small front matter.

A ticket file looks like::

    ---
    id: LOCAL-1
    title: Add a health endpoint
    labels: [claude, backend]
    priority: high
    ---
    Free text description.

The folder is the whole tracker, so the flow runs on a machine with no Plane account. Tracker
updates are no-ops; the daemon's own state files record what happened.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from orchestrator.models import TicketRecord, UpstreamTicket
from orchestrator.sources.base import TICKET_ID_PATTERN, SyncResult

PRIORITIES = {"urgent", "high", "medium", "low", "none"}


class TicketFileError(ValueError):
    """A ticket file that cannot be used; the message names the file and the fix."""


def _unquote(value: str) -> str:
    """Drop one pair of matching surrounding quotes: ``"a 'b'"`` -> ``a 'b'``."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _parse_list(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    return [_unquote(item.strip()) for item in value.split(",") if item.strip()]


def parse_ticket_file(path: Path, text: str, modified: datetime) -> UpstreamTicket:
    """Parse one ticket file; raise ``TicketFileError`` naming the file and what to fix."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise TicketFileError(f"{path}: must start with a '---' front matter block")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise TicketFileError(f"{path}: front matter is not closed by a '---' line") from None
    fields: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, separator, value = line.partition(":")
        if not separator:
            raise TicketFileError(f"{path}:{number}: expected 'key: value', got {line!r}")
        fields[key.strip().lower()] = _unquote(value.strip())
    ticket_id = fields.get("id", "")
    if not TICKET_ID_PATTERN.match(ticket_id):
        raise TicketFileError(
            f"{path}: 'id' must be letters, digits, '-' or '_' (got {ticket_id!r})"
        )
    if not fields.get("title"):
        raise TicketFileError(f"{path}: 'title' is missing")
    priority = fields.get("priority", "none").lower() or "none"
    if priority not in PRIORITIES:
        raise TicketFileError(
            f"{path}: 'priority' must be one of {', '.join(sorted(PRIORITIES))} (got {priority!r})"
        )
    return UpstreamTicket(
        id=ticket_id,
        identifier=ticket_id,
        title=fields["title"],
        description="\n".join(lines[end + 1 :]).strip(),
        priority=priority,  # type: ignore[arg-type]
        labels=_parse_list(fields.get("labels", "")),
        state=fields.get("state", ""),
        url=None,
        source="local",
        assignees=_parse_list(fields.get("assignee", "")),
        created_at=modified,
        updated_at=modified,
    )


class LocalFolderSource:
    """Reads every ``*.md`` file of a folder on each sync (cheap; marks are file mtimes)."""

    kind: Literal["plane", "local"] = "local"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def fetch_changes(self, marks: dict[str, str]) -> SyncResult:
        return await asyncio.to_thread(self._scan, marks)

    def _scan(self, marks: dict[str, str]) -> SyncResult:
        result = SyncResult(tickets=[], marks=dict(marks))
        if not self.folder.is_dir():
            result.problems.append(
                f"ticket folder {self.folder} does not exist: create it or set "
                "ORCHESTRATOR_TICKETS_DIR"
            )
            return result
        for path in sorted(self.folder.glob("*.md")):
            try:
                stat = path.stat()
                mark = f"{stat.st_mtime_ns}:{stat.st_size}"
                key = f"local:{path.name}"
                if marks.get(key) == mark:
                    continue
                modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                ticket = parse_ticket_file(path, path.read_text(encoding="utf-8"), modified)
            except (OSError, UnicodeDecodeError, TicketFileError) as exc:
                result.problems.append(
                    str(exc) if isinstance(exc, TicketFileError) else f"{path}: cannot read ({exc})"
                )
                continue
            result.tickets.append(ticket)
            result.marks[key] = mark
        return result

    async def mark_started(self, ticket: TicketRecord) -> None:
        return None

    async def post_comment(self, ticket: TicketRecord, summary: str) -> None:
        return None

    async def mark_completed(self, ticket: TicketRecord) -> None:
        return None

    async def aclose(self) -> None:
        return None
