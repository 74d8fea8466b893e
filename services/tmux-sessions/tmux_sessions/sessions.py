"""Session operations behind the HTTP API: tmux plus the metadata store, under one lock."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from tmux_sessions.models import SessionCreate
from tmux_sessions.store import SessionRecord, SessionStore, reconcile
from tmux_sessions.tmux import (
    SessionNotFoundError,
    Tmux,
    TmuxError,
    TmuxSession,
    TmuxUnavailableError,
)


class UnknownSessionError(LookupError):
    """No session with that id (or name)."""


class InvalidSessionRequestError(ValueError):
    """The request names something unusable; the message names the field."""


def new_session_id() -> str:
    """A short random id, e.g. ``'9f1c2b7a40de5a13'``."""
    return secrets.token_hex(8)


class SessionManager:
    """List, create, find, kill and type into sessions; keeps sessions.json in step with tmux."""

    def __init__(
        self, tmux: Tmux, store: SessionStore, *, default_cwd: Path, dead_retention: int
    ) -> None:
        self.tmux = tmux
        self.store = store
        self.default_cwd = default_cwd
        self.dead_retention = dead_retention
        self._lock = asyncio.Lock()

    async def _reconcile(self, extra: SessionRecord | None = None) -> list[SessionRecord]:
        """Bring sessions.json in step with tmux, and end finished sessions.

        A session whose command has exited (its pane kept by remain-on-exit) has its last
        screen read, is recorded dead with its exit status and that screen, and only then is
        its tmux session killed: a crash in between leaves it to the next listing, not lost.
        """
        listed = await self.tmux.list_sessions()
        finished = [session for session in listed if session.exit_status is not None]
        last_screens = {
            session.tmux_id: screen
            for session in finished
            if (screen := await self._last_screen(session)) is not None
        }
        known = self.store.records + ([extra] if extra else [])
        records, labels = reconcile(
            known,
            listed,
            last_screens=last_screens,
            new_id=new_session_id,
            dead_retention=self.dead_retention,
        )
        for tmux_id, aiwf_id in labels:
            try:
                await self.tmux.set_aiwf_id(tmux_id, aiwf_id)
            except SessionNotFoundError:
                records = [record for record in records if record.id != aiwf_id]
        self.store.replace_all(records)
        for session in finished:
            with contextlib.suppress(SessionNotFoundError):
                await self.tmux.kill_session(session.tmux_id)
        return records

    async def _last_screen(self, session: TmuxSession) -> str | None:
        """The finished session's last screen, or None when tmux cannot give it (the session
        was killed meanwhile, say): the session is still recorded as ended, with its exit
        status. Only a passing unavailability of tmux stops the listing (503), with nothing
        lost, as the next listing reads the screen again."""
        try:
            return await self.tmux.capture_last_screen(session.tmux_id)
        except TmuxUnavailableError:
            raise
        except TmuxError:
            return None

    async def refresh(self) -> list[SessionRecord]:
        """Every known session, live ones first; what tmux says wins."""
        async with self._lock:
            return await self._reconcile()

    async def finish_when_exited(self, tmux_id: str, *, interval: float) -> None:
        """Look every ``interval`` seconds whether the session's command has exited, and then
        record and end it as a listing does; runs until cancelled.

        The pane-died hook normally detaches a finished session's clients at once, but tmux
        3.3a sometimes misses the exit (see ``Tmux.reap_exited_panes``) and never fires it.
        A browser terminal runs this meanwhile, so it still ends, e.g. within 2 s of ``exit``
        with ``interval=2``. Failures (the session gone, tmux busy) wait for the next look.
        """
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(TmuxError):
                if await self.tmux.pane_exited(tmux_id):
                    await self.refresh()

    async def get(self, key: str, *, alive_only: bool = False) -> SessionRecord:
        """A session by id, or by the name of a live session."""
        records = await self.refresh()
        for record in records:
            if record.id == key:
                if alive_only and not record.alive:
                    break
                return record
        for record in records:
            if record.alive and record.name == key:
                return record
        raise UnknownSessionError(f"no session {key!r}")

    def _working_directory(self, cwd: str | None) -> Path:
        if cwd is None:
            return self.default_cwd
        path = Path(cwd)
        if not path.is_absolute():
            raise InvalidSessionRequestError(f"cwd: {cwd!r} is not an absolute path")
        if not path.is_dir():
            raise InvalidSessionRequestError(f"cwd: {cwd} is not an existing directory")
        return path

    async def create(self, request: SessionCreate, *, created_by: str | None) -> SessionRecord:
        cwd = self._working_directory(request.cwd)
        session_id = new_session_id()
        name = request.name or f"session-{session_id[:8]}"
        async with self._lock:
            await self.tmux.new_session(
                name=name,
                command=request.command,
                cwd=cwd,
                env=request.env,
                cols=request.cols,
                rows=request.rows,
                aiwf_id=session_id,
                ticket_id=request.ticket_id,
            )
            record = SessionRecord(
                id=session_id,
                name=name,
                created_at=datetime.now(UTC),
                command=request.command,
                cwd=str(cwd),
                created_by=created_by,
                ticket_id=request.ticket_id,
            )
            records = await self._reconcile(extra=record)
        found = next((r for r in records if r.id == session_id), None)
        return found or replace(record, alive=False)

    async def delete(self, key: str) -> None:
        """Kill the tmux session (when alive) and forget its metadata."""
        record = await self.get(key)
        async with self._lock:
            if record.alive and record.tmux_id:
                with contextlib.suppress(SessionNotFoundError):
                    await self.tmux.kill_session(record.tmux_id)
            self.store.replace_all([r for r in self.store.records if r.id != record.id])

    async def send_input(self, key: str, data: str, *, enter: bool) -> None:
        record = await self.get(key, alive_only=True)
        assert record.tmux_id is not None
        try:
            await self.tmux.send_text(record.tmux_id, data, enter=enter)
        except SessionNotFoundError:
            raise UnknownSessionError(f"session {key!r} ended") from None
