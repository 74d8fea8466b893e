"""Ticket state on disk: three lists plus dismissed ids and sync marks, written atomically.

Each file is replaced in one step (temporary file in the same directory, fsync, rename, fsync of
the directory), so a crash leaves either the old or the new content, never a torn file. A move
between lists writes the destination before the source: a crash in between leaves the ticket in
both, and ``load`` keeps the later stage (completed > active > pending), so nothing is lost and
nothing is duplicated.

Example::

    store = TicketStore(Path("/app/data"))
    problems = store.load()
    store.pending[ticket.id] = ticket
    await store.save("pending")
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

from orchestrator.models import TicketRecord, TicketStatus, utcnow

log = logging.getLogger(__name__)

ListName = Literal["pending", "active", "completed"]
FileName = Literal["pending", "active", "completed", "dismissed", "sync"]
LIST_NAMES: tuple[ListName, ...] = ("pending", "active", "completed")
FILE_NAMES: dict[FileName, str] = {
    "pending": "pending-tickets.json",
    "active": "active-tickets.json",
    "completed": "completed-tickets.json",
    "dismissed": "dismissed-tickets.json",
    "sync": "sync-state.json",
}


def write_atomically(path: Path, payload: bytes) -> None:
    """Replace ``path`` with ``payload`` so readers see the old or the new bytes only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class TicketStore:
    """In-memory ticket lists mirrored to JSON files in the data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pending: dict[str, TicketRecord] = {}
        self.active: dict[str, TicketRecord] = {}
        self.completed: dict[str, TicketRecord] = {}
        self.dismissed: dict[str, str] = {}
        self.sync_marks: dict[str, str] = {}
        self._write_lock = asyncio.Lock()
        self._json_cache: dict[ListName, bytes] = {}

    def lists(self) -> dict[ListName, dict[str, TicketRecord]]:
        return {"pending": self.pending, "active": self.active, "completed": self.completed}

    def where(self, ticket_id: str) -> ListName | None:
        for name, tickets in self.lists().items():
            if ticket_id in tickets:
                return name
        return None

    def get(self, ticket_id: str) -> TicketRecord | None:
        for tickets in self.lists().values():
            if ticket_id in tickets:
                return tickets[ticket_id]
        return None

    def load(self) -> list[str]:
        """Read every file; a file that does not parse is set aside and reported, not fatal."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.data_dir.glob(".*.tmp"):
            leftover.unlink()  # a write interrupted by a crash; the real file is intact
        problems: list[str] = []
        seen: set[str] = set()
        for name in reversed(LIST_NAMES):
            loaded = self._read(name, problems)
            target = self.lists()[name]
            target.clear()
            for item in loaded if isinstance(loaded, list) else []:
                try:
                    record = TicketRecord.model_validate(item)
                except ValueError as exc:
                    problems.append(f"{FILE_NAMES[name]}: skipped an invalid ticket ({exc})")
                    continue
                if record.id in seen:
                    continue
                seen.add(record.id)
                target[record.id] = record
        dismissed = self._read("dismissed", problems)
        self.dismissed = dict(dismissed) if isinstance(dismissed, dict) else {}
        marks = self._read("sync", problems)
        self.sync_marks = dict(marks) if isinstance(marks, dict) else {}
        for record in self.pending.values():
            record.status = TicketStatus.PENDING
        self._json_cache.clear()
        return problems

    def missing_files(self) -> list[FileName]:
        """State files not on disk yet (a fresh data directory gets all of them)."""
        return [name for name, file in FILE_NAMES.items() if not (self.data_dir / file).exists()]

    def _read(self, name: FileName, problems: list[str]) -> Any:
        path = self.data_dir / FILE_NAMES[name]
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            aside = path.with_name(f"{path.name}.unreadable-{utcnow():%Y%m%d-%H%M%S}")
            os.replace(path, aside)
            problems.append(f"{path} could not be read ({exc}); kept as {aside.name}")
            log.error("state file %s unreadable, moved to %s: %s", path, aside, exc)
            return None

    def list_json(self, name: ListName) -> bytes:
        """The ``{"tickets": [...], "count": N}`` body for one list, cached until it changes."""
        cached = self._json_cache.get(name)
        if cached is None:
            tickets = self.sorted_list(name)
            body = {
                "tickets": [t.public().model_dump(mode="json") for t in tickets],
                "count": len(tickets),
            }
            cached = json.dumps(body, separators=(",", ":")).encode()
            self._json_cache[name] = cached
        return cached

    def sorted_list(self, name: ListName) -> list[TicketRecord]:
        tickets = list(self.lists()[name].values())
        if name == "completed":
            tickets.sort(
                key=lambda t: t.completed_at.timestamp() if t.completed_at else 0.0, reverse=True
            )
        return tickets

    async def save(self, *names: FileName) -> None:
        """Persist the named files in the given order (destination before source on a move)."""
        for name in names:
            if name in LIST_NAMES:
                self._json_cache.pop(name, None)  # type: ignore[arg-type]
        payloads = [(self.data_dir / FILE_NAMES[name], self._serialise(name)) for name in names]
        async with self._write_lock:
            await asyncio.to_thread(self._write_all, payloads)

    def _serialise(self, name: FileName) -> bytes:
        content: Any
        if name == "dismissed":
            content = self.dismissed
        elif name == "sync":
            content = self.sync_marks
        else:
            content = [t.model_dump(mode="json") for t in self.lists()[name].values()]
        return json.dumps(content, indent=1).encode()

    @staticmethod
    def _write_all(payloads: list[tuple[Path, bytes]]) -> None:
        for path, payload in payloads:
            write_atomically(path, payload)
