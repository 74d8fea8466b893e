"""Session metadata in ``sessions.json`` and its reconciliation with what tmux reports.

tmux is the truth about which sessions live; the file adds what tmux does not know (who created
a session, for which ticket, with which command). Each tmux session carries our id in the user
option ``@aiwf_id``, so the two are joined even after a rename from the host's shell.

A session whose command has exited is finished: its record keeps how the command ended
(``exit_status``) and what it left on screen (``last_output``), e.g. 127 and
``"claude: command not found"``, after the tmux session itself is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from tmux_sessions.fileio import StateFileError, read_json, write_json_atomic
from tmux_sessions.tmux import TmuxSession


@dataclass(frozen=True)
class SessionRecord:
    """One session as the service knows it. ``exit_status`` and ``last_output`` are set when
    the session finished with its command's pane kept (remain-on-exit); older files without
    them load with None."""

    id: str
    name: str
    created_at: datetime
    command: str | None = None
    cwd: str | None = None
    created_by: str | None = None
    ticket_id: str | None = None
    tmux_id: str | None = None
    alive: bool = True
    clients: int = 0
    exit_status: int | None = None
    last_output: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        del data["clients"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionRecord:
        fields = dict(data)
        fields["created_at"] = datetime.fromisoformat(fields["created_at"])
        fields.pop("clients", None)
        return cls(**fields)


def reconcile(
    records: Iterable[SessionRecord],
    listed: Iterable[TmuxSession],
    *,
    last_screens: Mapping[str, str],
    new_id: Any,
    dead_retention: int,
) -> tuple[list[SessionRecord], list[tuple[str, str]]]:
    """Join stored records with the sessions tmux lists.

    Returns the new record list (live ones first, in tmux order, then the dead newest first,
    at most ``dead_retention`` of them) and the ``(tmux_id, aiwf_id)`` labels that must be set
    on running sessions started outside the service. ``new_id()`` makes ids for those.

    A listed session with an ``exit_status`` is finished: its record is dead and keeps that
    status and its last screen from ``last_screens`` (by tmux id; missing when it could not
    be read). E.g. ``last_screens={"$4": "claude: command not found"}`` for a session ``$4``
    listed with exit status 127 gives a dead record with both.
    """
    by_id = {record.id: record for record in records}
    running: list[SessionRecord] = []
    finished: list[SessionRecord] = []
    labels: list[tuple[str, str]] = []
    seen: set[str] = set()
    for session in listed:
        aiwf_id = session.aiwf_id
        if aiwf_id is None or aiwf_id in seen:
            aiwf_id = new_id()
            if session.exit_status is None:
                labels.append((session.tmux_id, aiwf_id))
        seen.add(aiwf_id)
        stored = by_id.get(aiwf_id)
        if stored is None:
            stored = SessionRecord(
                id=aiwf_id,
                name=session.name,
                created_at=session.created_at,
                ticket_id=session.ticket_id,
            )
        if session.exit_status is None:
            running.append(
                replace(
                    stored,
                    name=session.name,
                    tmux_id=session.tmux_id,
                    alive=True,
                    clients=session.clients,
                )
            )
        else:
            finished.append(
                replace(
                    stored,
                    name=session.name,
                    tmux_id=None,
                    alive=False,
                    clients=0,
                    exit_status=session.exit_status,
                    last_output=last_screens.get(session.tmux_id),
                )
            )
    dead = finished + [
        replace(record, alive=False, clients=0, tmux_id=None)
        for record in by_id.values()
        if record.id not in seen
    ]
    dead.sort(key=lambda record: record.created_at, reverse=True)
    return running + dead[:dead_retention], labels


class SessionStore:
    """The metadata file; written atomically and only when its content changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._records: list[SessionRecord] = self._read()
        self._written = self._serialise(self._records)

    def _read(self) -> list[SessionRecord]:
        data = read_json(self.path)
        if data is None:
            return []
        try:
            return [SessionRecord.from_json(entry) for entry in data["sessions"]]
        except (KeyError, TypeError, ValueError) as error:
            raise StateFileError(
                f'{self.path}: expected {{"sessions": [...]}} ({type(error).__name__}: '
                f"{error}); fix the file or move it away (sessions are rebuilt from tmux)."
            ) from None

    @staticmethod
    def _serialise(records: list[SessionRecord]) -> list[dict[str, Any]]:
        return [record.to_json() for record in records]

    @property
    def records(self) -> list[SessionRecord]:
        return list(self._records)

    def replace_all(self, records: list[SessionRecord]) -> None:
        self._records = list(records)
        serialised = self._serialise(self._records)
        if serialised != self._written:
            write_json_atomic(self.path, {"version": 1, "sessions": serialised})
            self._written = serialised
