"""The orchestrator's domain logic: sync, approval queue, sessions, completions, tracker updates.

All state changes run under one asyncio lock and are saved before the HTTP answer goes out, so
what a client was told survives a crash. Slow upstream calls (Plane, tmux) for tracker updates run
outside the lock, and so do the jobs that record a completed ticket's change and remove a deleted
ticket's worktree (git runs in the agent sandbox; see ``repository``).

Example::

    orchestrator = Orchestrator(settings, store, source, tmux, metrics)
    await orchestrator.start()
    ticket = await orchestrator.approve("WEB-1")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

from jinja2 import Template
from watchfiles import Change, awatch

from orchestrator.completion import (
    SETTLE_SECONDS,
    CompletionNotReady,
    CompletionRejected,
    completion_ticket_id,
    failure_reason,
    failure_ticket_id,
    is_candidate,
    move_aside,
    read_summary,
)
from orchestrator.core.config import NO_AGENT_CREDENTIAL, Settings
from orchestrator.jobs import last_line, run_job
from orchestrator.metrics import Metrics
from orchestrator.models import (
    RETRYABLE_STATUSES,
    RUNNING_STATUSES,
    TicketChange,
    TicketRecord,
    TicketStatus,
    TrackerSync,
    UpstreamTicket,
    Worktree,
    utcnow,
)
from orchestrator.prompt import build_command, load_template, render_prompt
from orchestrator.repository import (
    RESULTS_FOLDER,
    ChangeError,
    ChangeResult,
    cleanup_script,
    finish_command,
    plan_worktree,
    read_results,
    safe_identifier,
    shell_command,
    start_script,
)
from orchestrator.sources.base import SelectionRules, SourceError, TicketSource
from orchestrator.store import FileName, ListName, TicketStore, write_atomically
from orchestrator.tmux_client import TmuxClient, TmuxServiceError

log = logging.getLogger(__name__)

# tmux-sessions already keeps at most 4000 characters of a dead pane; the bound is kept here too
# so an answer from elsewhere cannot grow the state files.
AGENT_OUTPUT_LIMIT = 4000


class TicketNotFound(Exception):
    """No ticket with that id (HTTP 404)."""

    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"No ticket with id {ticket_id}.")


class TicketConflict(Exception):
    """The ticket is not in a status that allows the action (HTTP 409)."""


class ChangeNotRecorded(Exception):
    """The ticket has no recorded change (HTTP 404)."""

    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"Ticket {ticket_id} has no recorded change.")


def session_name(ticket: TicketRecord) -> str:
    """``claude-<IDENT>-<attempt>-<yyyymmdd-hhmmss>``, safe as a tmux session name (<= 64 chars).

    >>> t = TicketRecord(id="x", identifier="WEB-12", title="t", source="local", attempt=1)
    >>> session_name(t).startswith("claude-WEB-12-1-")
    True
    """
    identifier = re.sub(r"[^A-Za-z0-9_-]", "-", ticket.identifier)[:32]
    return f"claude-{identifier}-{ticket.attempt}-{utcnow():%Y%m%d-%H%M%S}"


def agent_exit_reason(status: int, output: str | None) -> str:
    r"""The one-line ``error`` of a ticket whose agent exited: the status and its last words.

    A dead agent's last non-empty line (``claude: command not found``, an API error) usually
    names the cause, so the dashboard can show it without opening the terminal.

    >>> agent_exit_reason(127, "$ run\nbash: line 1: claude: command not found\n\n")
    'the agent exited with status 127: bash: line 1: claude: command not found'
    >>> agent_exit_reason(1, None)
    'the agent exited with status 1'
    """
    last = last_line(output)
    reason = f"the agent exited with status {status}"
    return f"{reason}: {last}" if last else reason


def _store_patch(path: Path, patch: bytes) -> None:
    """Keep a ticket's patch in the data directory (``changes/<id>.patch``), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, patch)


class Orchestrator:
    """Owns the ticket lists and every background loop of the daemon."""

    def __init__(
        self,
        settings: Settings,
        store: TicketStore,
        source: TicketSource,
        tmux: TmuxClient,
        metrics: Metrics,
        config_problems: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.source = source
        self.tmux = tmux
        self.metrics = metrics
        self.rules = SelectionRules(
            state_groups=tuple(settings.state_group_list),
            state_names=tuple(settings.state_name_list),
            labels=tuple(settings.label_list),
            assignee=settings.select_assignee,
        )
        self.config_problems = list(config_problems or [])
        self.state_problems: list[str] = []
        self.sync_problems: list[str] = []
        self.tmux_problem: str | None = None
        self.tmux_reachable = False
        self.template: Template | None = None
        self._lock = asyncio.Lock()
        self._sync_requested = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._recheck_handle: asyncio.TimerHandle | None = None
        self._finishing: set[str] = set()

    # ----------------------------------------------------------------- lifecycle
    async def open(self) -> None:
        """Load state and the prompt template; no background loop runs yet."""
        try:
            self.state_problems = self.store.load()
            missing = self.store.missing_files()
            if missing:
                await self.store.save(*missing)
        except OSError as exc:
            self.state_problems = [
                f"data directory {self.store.data_dir} is unusable ({exc.strerror}): "
                "fix its permissions or ORCHESTRATOR_DATA_DIR"
            ]
            log.error("%s", self.state_problems[0])
        try:
            self.template = load_template(self.settings.prompt_template_file)
        except Exception as exc:
            self.config_problems.append(
                f"prompt template {self.settings.prompt_template_file} unusable: {exc}"
            )
        for folder in (self.settings.completion_dir, self.settings.archive_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.config_problems.append(f"cannot create {folder}: {exc.strerror}")
        self._update_gauges()

    async def start(self) -> None:
        """Open, then run sync, session checks, completion watching and tracker updates."""
        await self.open()
        self._spawn(self._loop(self.sync_once, self.settings.poll_interval, self._sync_requested))
        self._spawn(self._loop(self.check_sessions, self.settings.session_check_interval))
        self._spawn(self._loop(self.scan_completions, self.settings.rescan_interval))
        self._spawn(self._watch_completions())
        self._spawn(self._loop(self.push_tracker_updates, 1.0))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.source.aclose()
        await self.tmux.aclose()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._tasks = [task for task in self._tasks if not task.done()]
        self._tasks.append(asyncio.create_task(coroutine))

    async def _loop(
        self,
        step: Callable[[], Awaitable[None]],
        interval: float,
        wake: asyncio.Event | None = None,
    ) -> None:
        """Run ``step`` now and every ``interval`` seconds (or when ``wake`` is set)."""
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background step %s failed", getattr(step, "__name__", step))
            if wake is None:
                await asyncio.sleep(interval)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=interval)
            wake.clear()

    def request_sync(self) -> None:
        """Ask for a sync now (webhook); polling stays the safety net."""
        self._sync_requested.set()

    # ----------------------------------------------------------------- queries
    def problems(self) -> list[str]:
        found = [*self.config_problems, *self.state_problems, *self.sync_problems]
        if self.tmux_problem:
            found.append(self.tmux_problem)
        return found

    async def change(self, ticket_id: str) -> TicketChange:
        """The recorded change of a ticket: branch, commits, diffstat and the stored patch."""
        record = self.store.get(ticket_id)
        if record is None:
            raise TicketNotFound(ticket_id)
        if record.branch is None or record.diffstat is None or record.change_pending:
            raise ChangeNotRecorded(ticket_id)
        try:
            patch = await asyncio.to_thread(self._patch_path(ticket_id).read_bytes)
        except FileNotFoundError:
            raise ChangeNotRecorded(ticket_id) from None
        return TicketChange(
            branch=record.branch,
            commits=record.commits,
            diffstat=record.diffstat,
            patch=patch.decode("utf-8", errors="replace"),
        )

    def _patch_path(self, ticket_id: str) -> Path:
        return self.settings.data_dir / "changes" / f"{ticket_id}.patch"

    def _update_gauges(self) -> None:
        self.metrics.pending.set(len(self.store.pending))
        self.metrics.active.set(len(self.store.active))
        self.metrics.completed.set(len(self.store.completed))

    async def _save(self, *names: FileName) -> None:
        await self.store.save(*names)
        self._update_gauges()

    # ----------------------------------------------------------------- sync
    async def sync_once(self) -> None:
        """Pull changed tickets from the source and fold them into the lists."""
        try:
            result = await self.source.fetch_changes(self.store.sync_marks)
        except SourceError as exc:
            self.sync_problems = [f"ticket sync failed: {exc}"]
            log.warning("ticket sync failed: %s", exc)
            return
        async with self._lock:
            touched: set[ListName] = set()
            for upstream in result.tickets:
                changed = self._apply_upstream(upstream)
                if changed is not None:
                    touched.add(changed)
            order: list[FileName] = [n for n in ("pending", "active", "completed") if n in touched]
            if result.marks != self.store.sync_marks:
                self.store.sync_marks = result.marks
                order.append("sync")
            if order:
                await self._save(*order)
        self.sync_problems = result.problems
        if touched:
            log.info(
                "sync: %d tickets seen, lists changed: %s", len(result.tickets), sorted(touched)
            )

    def _apply_upstream(self, upstream: UpstreamTicket) -> ListName | None:
        if upstream.id in self.store.dismissed:
            return None
        where = self.store.where(upstream.id)
        if where is None:
            if not self.rules.matches(upstream):
                return None
            self.store.pending[upstream.id] = TicketRecord.from_upstream(upstream)
            return "pending"
        record = self.store.lists()[where][upstream.id]
        if where == "pending" and not self.rules.matches(upstream):
            del self.store.pending[upstream.id]
            return "pending"
        if record.updated_at == upstream.updated_at:
            return None
        if (
            record.updated_at is not None
            and upstream.updated_at is not None
            and upstream.updated_at < record.updated_at
        ):
            return None
        state, group = record.state, record.state_group
        record.refresh_from(upstream)
        if where != "pending" and record.tracker_ops:
            record.state, record.state_group = state, group
        return where

    # ----------------------------------------------------------------- actions
    def _pending(self, ticket_id: str, action: str) -> TicketRecord:
        """The pending ticket, or TicketNotFound / TicketConflict for the HTTP answer."""
        record = self.store.pending.get(ticket_id)
        if record is None:
            if self.store.get(ticket_id) is None:
                raise TicketNotFound(ticket_id)
            raise TicketConflict(
                f"Ticket {ticket_id} is not pending; only pending tickets can be {action}."
            )
        return record

    def _require_agent_credential(self) -> None:
        """Refuse a launch up front when aiwf said the agent has no credential.

        Claude Code without one waits at its login screen forever, so the ticket would look
        active while nothing happens; refusing keeps it where it was and says what to fix.
        """
        if not self.settings.agent_ready:
            raise TicketConflict(NO_AGENT_CREDENTIAL)

    async def approve(self, ticket_id: str) -> TicketRecord:
        async with self._lock:
            record = self._pending(ticket_id, "approved")
            self._require_agent_credential()
            record.status = TicketStatus.QUEUED
            record.approved_at = utcnow()
            record.error = None
            self.store.active[ticket_id] = record
            del self.store.pending[ticket_id]
            await self._save("active", "pending")
            self.metrics.approvals.inc()
            await self._dispatch()
            return record

    async def reject(self, ticket_id: str) -> TicketRecord:
        async with self._lock:
            record = self._pending(ticket_id, "rejected")
            self.store.dismissed[ticket_id] = f"rejected {utcnow().isoformat()}"
            del self.store.pending[ticket_id]
            await self._save("dismissed", "pending")
            return record

    async def retry(self, ticket_id: str) -> TicketRecord:
        async with self._lock:
            record = self.store.get(ticket_id)
            if record is None:
                raise TicketNotFound(ticket_id)
            if ticket_id not in self.store.active or record.status not in RETRYABLE_STATUSES:
                raise TicketConflict(
                    f"Ticket {ticket_id} is {record.status.value}; only failed or interrupted "
                    "tickets can be retried."
                )
            self._require_agent_credential()
            record.status = TicketStatus.QUEUED
            record.approved_at = utcnow()
            record.session_id = record.session_name = None
            record.started_at = None
            record.error = None
            record.agent_exit_status = record.agent_output = None
            await self._save("active")
            await self._dispatch()
            return record

    async def delete(self, ticket_id: str) -> None:
        async with self._lock:
            where = self.store.where(ticket_id)
            if where is None:
                raise TicketNotFound(ticket_id)
            record = self.store.lists()[where][ticket_id]
            if record.status in RUNNING_STATUSES and record.session_id:
                try:
                    await self.tmux.kill(record.session_id)
                except TmuxServiceError as exc:
                    log.warning("could not kill session of deleted ticket %s: %s", ticket_id, exc)
            self.store.dismissed[ticket_id] = f"deleted {utcnow().isoformat()}"
            del self.store.lists()[where][ticket_id]
            await self._save("dismissed", where)
            with contextlib.suppress(FileNotFoundError):
                self._patch_path(ticket_id).unlink()
            if record.worktree is not None:
                self._spawn(self._remove_worktree(record, record.worktree))
            await self._dispatch()

    async def _remove_worktree(self, record: TicketRecord, worktree: Worktree) -> None:
        """Keep a deleted ticket's work on its branch (``wip: <identifier>``), then remove its
        worktree. A failure keeps the worktree as it is and is logged: nothing is lost."""
        name = f"cleanup-{safe_identifier(record)[:32]}-{record.attempt}"
        script = cleanup_script(worktree, f"wip: {record.identifier}")
        try:
            outcome = await run_job(self.tmux, name, shell_command(script), self.settings.workspace)
        except TmuxServiceError as exc:
            log.warning("could not remove the worktree of deleted %s: %s", record.identifier, exc)
            return
        if outcome.succeeded:
            log.info("removed the worktree %s of deleted %s", worktree.path, record.identifier)
        else:
            log.warning(
                "worktree %s of deleted %s kept: %s",
                worktree.path,
                record.identifier,
                outcome.reason("the cleanup job"),
            )

    # ----------------------------------------------------------------- sessions
    async def _dispatch(self) -> None:
        """Start queued tickets, oldest approval first, while the concurrency cap allows.

        Without an agent credential nothing starts: tickets queued before the credential went
        away wait in the queue instead of parking an agent at the login screen.
        """
        if not self.settings.agent_ready:
            return
        running = sum(1 for t in self.store.active.values() if t.status in RUNNING_STATUSES)
        queued = sorted(
            (t for t in self.store.active.values() if t.status == TicketStatus.QUEUED),
            key=lambda t: t.approved_at.timestamp() if t.approved_at else 0.0,
        )
        for record in queued[: max(0, self.settings.max_active - running)]:
            if not await self._start_session(record):
                break

    async def _start_session(self, record: TicketRecord) -> bool:
        if self.template is None:
            record.error = "the prompt template is unusable; see /health"
            await self._save("active")
            return False
        record.attempt += 1
        name = session_name(record)
        completion_file = str(
            self.settings.agent_side_completion_dir / f"completion-{record.id}.txt"
        )
        plan = plan_worktree(self.settings.repository, self.settings.workspace, record)
        if plan is not None:
            record.branch, record.worktree = plan.branch, plan.worktree
        prompt = render_prompt(self.template, record, completion_file)
        command = build_command(
            self.settings.agent_command,
            {"prompt": prompt, "ticket_id": record.id, "completion_file": completion_file},
        )
        if plan is not None:
            command = shell_command(start_script(plan, command))
        env = {"TICKET_ID": record.id, "COMPLETION_FILE": completion_file}
        try:
            session = await self._live_session_of(record.id) or await self.tmux.create(
                name, command, self.settings.workspace, env, record.id
            )
        except TmuxServiceError as exc:
            if exc.permanent:
                record.status = TicketStatus.FAILED
                record.error = f"{exc}; fix the cause, then retry"
            else:
                record.attempt -= 1
                record.error = f"waiting for the tmux service: {exc}"
            await self._save("active")
            log.warning("could not start %s: %s", record.identifier, exc)
            return exc.permanent
        record.session_id = str(session.get("id") or name)
        record.session_name = str(session.get("name") or name)
        record.started_at = utcnow()
        record.status = TicketStatus.ACTIVE
        record.error = None
        if self.source.kind == "plane":
            self._queue_tracker(record, "start")
        await self._save("active")
        log.info("started %s in session %s", record.identifier, record.session_name)
        return True

    async def _live_session_of(self, ticket_id: str) -> dict[str, Any] | None:
        """A live session already started for the ticket (a create whose answer was lost)."""
        for session in await self.tmux.list():
            if session.get("ticket_id") == ticket_id and session.get("alive", True):
                return session
        return None

    async def check_sessions(self) -> None:
        """Reconcile running tickets with live sessions, mark overdue ones, fill free slots."""
        self.tmux_reachable = await self.tmux.healthy()
        if not self.tmux_reachable:
            self.tmux_problem = f"tmux-sessions service at {self.tmux.base_url} is unreachable"
            return
        running = [t for t in self.store.active.values() if t.status in RUNNING_STATUSES]
        snapshot = {t.id: t.session_id for t in running}
        try:
            sessions = await self.tmux.list()  # also proves the token is accepted
        except TmuxServiceError as exc:
            self.tmux_problem = str(exc)
            return
        self.tmux_problem = None
        for record in self.store.completed.values():
            # A finish job that waited for tmux-sessions, or that a restart interrupted.
            if record.change_pending and record.id not in self._finishing:
                self._spawn(self.record_change(record.id))
        # Every listed session, dead ones included: a dead one carries the agent's exit status
        # and last screen. By name too, for a session_id that fell back to the name; ids win.
        listed = {str(s.get("name")): s for s in sessions} | {str(s.get("id")): s for s in sessions}
        alive = {key for key, session in listed.items() if session.get("alive", True)}
        for record in running:
            if record.session_id in alive:
                continue
            await self._handle_completion_file(
                self.settings.completion_dir / f"completion-{record.id}.txt", settled=True
            )
        async with self._lock:
            changed = False
            limit = timedelta(seconds=self.settings.session_time_limit)
            now = utcnow()
            for record in list(self.store.active.values()):
                if record.status not in RUNNING_STATUSES:
                    continue
                listed_before = snapshot.get(record.id) == record.session_id
                if listed_before and record.session_id not in alive:
                    self._interrupt(record, listed.get(record.session_id or ""))
                    changed = True
                elif (
                    record.status == TicketStatus.ACTIVE
                    and record.started_at is not None
                    and now - record.started_at > limit
                ):
                    record.status = TicketStatus.OVERDUE
                    record.error = f"running longer than {limit}"
                    changed = True
            if changed:
                await self._save("active")
            await self._dispatch()

    def _interrupt(self, record: TicketRecord, session: dict[str, Any] | None) -> None:
        """Mark a running ticket whose session ended without a completion ``interrupted``.

        ``session`` is its (dead) list item, or None when it vanished. When tmux-sessions knows
        the exit status, the ticket keeps it and the last screen, so a failing agent (a missing
        binary, a refused key) shows why on the ticket instead of a bare "ended".
        """
        record.status = TicketStatus.INTERRUPTED
        if session is None or not isinstance(session.get("exit_status"), int):
            record.error = f"session {record.session_name} ended without a completion; retry it"
            log.warning("%s interrupted: session ended, exit status unknown", record.identifier)
            return
        output = session.get("last_output")
        record.agent_exit_status = session["exit_status"]
        record.agent_output = output[-AGENT_OUTPUT_LIMIT:] if isinstance(output, str) else None
        record.error = agent_exit_reason(session["exit_status"], record.agent_output)
        log.warning("%s interrupted: %s", record.identifier, record.error)

    # ----------------------------------------------------------------- completions
    async def _watch_completions(self) -> None:
        """inotify on the completion folder; if watching fails, the rescan still finds files."""
        folder = self.settings.completion_dir
        while True:
            try:
                async for changes in awatch(
                    folder,
                    recursive=False,
                    watch_filter=lambda change, path: (
                        change != Change.deleted and is_candidate(os.path.basename(path))
                    ),
                ):
                    for _change, path in changes:
                        await self._handle_completion_file(Path(path))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watching %s failed (%s); relying on the rescan", folder, exc)
            await asyncio.sleep(self.settings.rescan_interval)

    async def scan_completions(self) -> None:
        """Periodic rescan: the safety net for missed inotify events and files from downtime."""
        folder = self.settings.completion_dir
        try:
            names = sorted(entry.name for entry in os.scandir(folder) if is_candidate(entry.name))
        except OSError as exc:
            log.warning("cannot scan %s: %s", folder, exc)
            return
        for name in names:
            await self._handle_completion_file(folder / name)

    def _recheck_soon(self) -> None:
        if self._recheck_handle is None or self._recheck_handle.cancelled():
            loop = asyncio.get_running_loop()

            def fire() -> None:
                self._recheck_handle = None
                self._spawn(self.scan_completions())

            self._recheck_handle = loop.call_later(1.0, fire)

    async def _read_reported(
        self, path: Path, settle_seconds: float, record: TicketRecord | None
    ) -> str | None:
        """The text an agent left in ``path`` (a completion or a failure report), or None when
        there is nothing to act on yet: still being written (looked at again shortly),
        refused (set aside, never lost) or unreadable (logged)."""
        try:
            return read_summary(path, settle_seconds=settle_seconds)
        except CompletionNotReady:
            self._recheck_soon()
        except CompletionRejected as exc:
            await self._set_aside(path, exc, record)
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
        return None

    async def _handle_failure_file(self, path: Path, ticket_id: str) -> None:
        """A ``StopFailure`` report: the agent's turn ended on an API error. The ticket stays
        active (its agent waits at its prompt, where a person can answer) and shows why."""
        async with self._lock:
            if not os.path.lexists(path):
                return
            record = self.store.active.get(ticket_id)
            text = await self._read_reported(path, SETTLE_SECONDS, None)
            if text is None:
                return
            try:
                reason = failure_reason(text)
            except CompletionRejected as exc:
                await self._set_aside(path, exc, None)
                return
            move_aside(path, self.settings.archive_dir / "failures")
            if record is None or record.status not in RUNNING_STATUSES:
                return
            record.error = f"{reason}; fix the cause, then answer the agent in its terminal"
            await self._save("active")
            log.warning("%s: %s", record.identifier, reason)

    async def _handle_completion_file(self, path: Path, *, settled: bool = False) -> None:
        failed = failure_ticket_id(path.name)
        if failed is not None:
            await self._handle_failure_file(path, failed)
            return
        async with self._lock:
            if not os.path.lexists(path):
                return
            ticket_id = completion_ticket_id(path.name)
            record = self.store.active.get(ticket_id) if ticket_id else None
            if ticket_id is None:
                bad_name = CompletionRejected("bad_name", f"{path.name}: not a valid ticket id")
                await self._set_aside(path, bad_name, record)
                return
            summary = await self._read_reported(path, 0.0 if settled else SETTLE_SECONDS, record)
            if summary is None:
                return
            if record is None or record.status not in (*RUNNING_STATUSES, TicketStatus.INTERRUPTED):
                known = self.store.get(ticket_id) if ticket_id else None
                reason = (
                    CompletionRejected("unknown_ticket", f"{path.name}: no such ticket")
                    if known is None
                    else CompletionRejected(
                        "not_active", f"{path.name}: ticket is {known.status.value}, not active"
                    )
                )
                await self._set_aside(path, reason, None)
                return
            await self._complete(record, summary)
            move_aside(path, self.settings.archive_dir / "accepted")
            await self._dispatch()

    async def _complete(self, record: TicketRecord, summary: str) -> None:
        now = utcnow()
        record.status = TicketStatus.COMPLETED
        record.summary = summary
        record.completed_at = now
        record.error = None
        record.change_pending = record.worktree is not None
        if self.source.kind == "plane":
            self._queue_tracker(record, "comment", "complete")
        self.store.completed[record.id] = record
        del self.store.active[record.id]
        await self._save("completed", "active")
        self.metrics.completions.inc()
        if record.started_at is not None:
            self.metrics.session_duration.observe((now - record.started_at).total_seconds())
        log.info("completed %s", record.identifier)
        if record.change_pending:
            self._spawn(self.record_change(record.id))

    async def record_change(self, ticket_id: str) -> None:
        """Run the finish job of a completed ticket and keep what it found on the ticket.

        Runs outside the state lock (the job takes seconds). Whatever goes wrong, the ticket
        stays completed: ``change_error`` says why its change is missing, and the tracker
        comment, held back until now, goes out either way. Only a tmux-sessions service that
        cannot be reached leaves the job pending; the session check starts it again.
        """
        record = self.store.completed.get(ticket_id)
        if record is None or not record.change_pending or record.worktree is None:
            return
        if ticket_id in self._finishing:
            return
        self._finishing.add(ticket_id)
        result: ChangeResult | None = None
        try:
            result = await self._finish(record, record.worktree)
            await asyncio.to_thread(_store_patch, self._patch_path(ticket_id), result.patch)
            error = None
        except TmuxServiceError as exc:
            if not exc.permanent:
                log.warning("finish job of %s waits for tmux-sessions: %s", ticket_id, exc)
                return
            error = f"the finish job could not start: {exc}"
        except (ChangeError, OSError) as exc:
            error = str(exc)
        finally:
            self._finishing.discard(ticket_id)
        async with self._lock:
            current = self.store.completed.get(ticket_id)
            if current is None:  # deleted meanwhile
                with contextlib.suppress(FileNotFoundError):
                    self._patch_path(ticket_id).unlink()
                return
            if result is not None and error is None:
                current.branch, current.commits = result.branch, result.commits
                current.diffstat = result.diffstat
            current.change_error = error
            current.change_pending = False
            await self._save("completed")
        if error is None:
            log.info("recorded the change of %s on %s", current.identifier, current.branch)
        else:
            log.warning("the change of %s was not recorded: %s", current.identifier, error)

    async def _finish(self, record: TicketRecord, worktree: Worktree) -> ChangeResult:
        """The finish job in the sandbox, then its results.

        Raises ``ChangeError`` naming what went wrong, ``TmuxServiceError`` when the job
        cannot be started.
        """
        results = self.settings.agent_side_completion_dir / RESULTS_FOLDER / record.id
        command = finish_command(
            worktree, str(results), f"{record.identifier}: {record.title}", record.summary or ""
        )
        name = f"finish-{safe_identifier(record)[:32]}-{record.attempt}"
        outcome = await run_job(self.tmux, name, command, self.settings.workspace)
        if not outcome.succeeded:
            raise ChangeError(outcome.reason("the finish job"))
        return await asyncio.to_thread(read_results, self.settings.completion_dir, record.id)

    async def _set_aside(
        self, path: Path, problem: CompletionRejected, record: TicketRecord | None
    ) -> None:
        target = move_aside(path, self.settings.archive_dir / "rejected")
        self.metrics.rejected_completions.labels(reason=problem.reason).inc()
        log.warning("completion file refused (%s); kept as %s", problem, target)
        if record is not None and record.status in RUNNING_STATUSES:
            record.error = f"completion refused: {problem}; kept as {target}"
            await self._save("active")

    # ----------------------------------------------------------------- tracker
    def _queue_tracker(self, record: TicketRecord, *operations: Any) -> None:
        record.tracker_ops.extend(operations)
        record.tracker_sync = TrackerSync(state="pending", attempts=record.tracker_sync.attempts)
        record.next_tracker_try = None

    async def push_tracker_updates(self) -> None:
        """Send queued tracker updates; a failure is kept, shown and retried with backoff."""
        now = utcnow()
        due = [
            (name, t.id)
            for name in ("active", "completed")
            for t in self.store.lists()[name].values()  # type: ignore[index]
            if t.tracker_ops
            # The comment carries the change: it waits until the finish job recorded it.
            and not (t.change_pending and t.tracker_ops[0] == "comment")
            and (t.next_tracker_try is None or t.next_tracker_try <= now)
        ]
        for list_name, ticket_id in due:
            record = self.store.lists()[list_name].get(ticket_id)  # type: ignore[index]
            if record is None or not record.tracker_ops:
                continue
            operation = record.tracker_ops[0]
            working = record.model_copy(deep=True)
            try:
                if operation == "start":
                    await self.source.mark_started(working)
                elif operation == "comment":
                    await self.source.post_comment(working, record.summary or "")
                else:
                    await self.source.mark_completed(working)
                error = None
            except SourceError as exc:
                error = str(exc)
            async with self._lock:
                where = self.store.where(ticket_id)
                if where is None:
                    continue
                current = self.store.lists()[where][ticket_id]
                sync = current.tracker_sync
                if error is None:
                    if current.tracker_ops and current.tracker_ops[0] == operation:
                        current.tracker_ops.pop(0)
                    if operation != "comment":
                        current.state, current.state_group = working.state, working.state_group
                    current.tracker_sync = TrackerSync(
                        state="pending" if current.tracker_ops else "ok",
                        attempts=sync.attempts,
                    )
                else:
                    self.metrics.tracker_failures.inc()
                    attempts = sync.attempts + 1
                    delay = min(self.settings.tracker_retry_max_delay, 2.0**attempts)
                    current.tracker_sync = TrackerSync(
                        state="failed", error=error, attempts=attempts
                    )
                    current.next_tracker_try = utcnow() + timedelta(seconds=delay)
                    log.warning("tracker update %s for %s failed: %s", operation, ticket_id, error)
                await self._save(where)
