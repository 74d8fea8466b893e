"""Completion files: accepted, refused and set aside, never lost; real tmux behind the double."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from orchestrator.models import TicketStatus


def aged(path: Path) -> Path:
    """Backdate a file so it counts as fully written."""
    past = time.time() - 5
    os.utime(path, (past, past), follow_symlinks=False)
    return path


def set_aside(settings: Any, kind: str) -> list[Path]:
    folder = settings.archive_dir / kind
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
async def running(
    make_settings: Any,
    make_orchestrator: Any,
    tmux_service: Any,
    ticket_writer: Any,
    tmp_path: Path,
) -> Any:
    """An orchestrator with tickets T-1 and T-2 approved and running in real tmux sessions."""
    settings = make_settings(
        tmux_url=tmux_service.url,
        tmux_token_file=tmux_service.token_file,
        agent_command="sleep 600",
        max_active=5,
    )
    for ticket_id in ("T-1", "T-2", "T-3"):
        ticket_writer(settings.tickets_dir, ticket_id, f"Ticket {ticket_id}")
    orchestrator = await make_orchestrator(settings)
    await orchestrator.sync_once()
    for ticket_id in ("T-1", "T-2"):
        approved = await orchestrator.approve(ticket_id)
        assert approved.status == TicketStatus.ACTIVE, approved.error
    return orchestrator


async def test_valid_file_completes_the_ticket(running: Any) -> None:
    settings = running.settings
    path = settings.completion_dir / "completion-T-1.txt"
    path.write_text("Added the endpoint.\nTests pass. <b>ok</b>\n", encoding="utf-8")
    aged(path)

    await running.scan_completions()

    ticket = running.store.completed["T-1"]
    assert ticket.status == TicketStatus.COMPLETED
    assert ticket.summary == "Added the endpoint.\nTests pass. <b>ok</b>"
    assert ticket.completed_at is not None
    assert "T-1" not in running.store.active
    assert not path.exists()
    archived = set_aside(settings, "accepted")
    assert len(archived) == 1 and archived[0].read_text().startswith("Added the endpoint.")
    assert "T-1" in (settings.data_dir / "completed-tickets.json").read_text()


async def test_unknown_ticket_file_is_kept_aside(running: Any) -> None:
    settings = running.settings
    path = settings.completion_dir / "completion-NOPE-9.txt"
    path.write_text("summary")
    aged(path)

    await running.scan_completions()

    assert not path.exists()
    kept = set_aside(settings, "rejected")
    assert len(kept) == 1 and kept[0].read_text() == "summary"
    assert set(running.store.active) == {"T-1", "T-2"}


async def test_symlink_is_refused_and_its_target_untouched(running: Any, tmp_path: Path) -> None:
    settings = running.settings
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read me")
    link = settings.completion_dir / "completion-T-1.txt"
    link.symlink_to(secret)
    aged(link)

    await running.scan_completions()

    assert running.store.active["T-1"].status == TicketStatus.ACTIVE
    assert "symlink" in (running.store.active["T-1"].error or "")
    assert secret.read_text() == "do not read me"
    kept = set_aside(settings, "rejected")
    assert len(kept) == 1 and kept[0].is_symlink()
    assert not os.path.lexists(link)


async def test_one_mebibyte_file_is_refused(running: Any) -> None:
    settings = running.settings
    path = settings.completion_dir / "completion-T-1.txt"
    path.write_bytes(b"x" * (1024 * 1024))
    aged(path)

    await running.scan_completions()

    ticket = running.store.active["T-1"]
    assert ticket.status == TicketStatus.ACTIVE and ticket.summary is None
    assert "1048576 bytes" in (ticket.error or "")
    kept = set_aside(settings, "rejected")
    assert len(kept) == 1 and kept[0].stat().st_size == 1024 * 1024


async def test_invalid_utf8_is_refused(running: Any) -> None:
    settings = running.settings
    path = settings.completion_dir / "completion-T-2.txt"
    path.write_bytes(b"done \xff\xfe broken")
    aged(path)

    await running.scan_completions()

    ticket = running.store.active["T-2"]
    assert ticket.status == TicketStatus.ACTIVE and "UTF-8" in (ticket.error or "")
    kept = set_aside(settings, "rejected")
    assert kept[0].read_bytes() == b"done \xff\xfe broken"


async def test_traversal_name_never_reaches_outside(running: Any) -> None:
    settings = running.settings
    (settings.completion_dir / "completion-..").mkdir()
    escaped = settings.completion_dir / "completion-../../x.txt"
    escaped.write_text("escape")
    aged(escaped)
    landed = settings.completion_dir / "x.txt"  # where the kernel resolves that name
    weird = settings.completion_dir / "completion-..x.txt"
    weird.write_text("odd name")
    aged(weird)

    await running.scan_completions()

    assert landed.read_text() == "escape"  # not a completion name: left alone
    assert set(running.store.active) == {"T-1", "T-2"}
    kept = set_aside(settings, "rejected")
    assert [p.read_text() for p in kept] == ["odd name"]


async def test_second_file_for_a_ticket_keeps_the_first_summary(running: Any) -> None:
    settings = running.settings
    first = settings.completion_dir / "completion-T-1.txt"
    first.write_text("first summary")
    aged(first)
    await running.scan_completions()
    second = settings.completion_dir / "completion-T-1.txt"
    second.write_text("second summary")
    aged(second)

    await running.scan_completions()

    assert running.store.completed["T-1"].summary == "first summary"
    assert [p.read_text() for p in set_aside(settings, "accepted")] == ["first summary"]
    assert [p.read_text() for p in set_aside(settings, "rejected")] == ["second summary"]


async def test_file_still_being_written_waits(running: Any) -> None:
    settings = running.settings
    path = settings.completion_dir / "completion-T-2.txt"
    path.write_text("partial")

    await running.scan_completions()

    assert running.store.active["T-2"].status == TicketStatus.ACTIVE
    assert path.exists()
    aged(path)
    await running.scan_completions()
    assert running.store.completed["T-2"].summary == "partial"


async def test_completion_for_pending_ticket_is_refused(running: Any) -> None:
    settings = running.settings
    path = settings.completion_dir / "completion-T-3.txt"
    path.write_text("too early")
    aged(path)

    await running.scan_completions()

    assert running.store.pending["T-3"].status == TicketStatus.PENDING
    assert [p.read_text() for p in set_aside(settings, "rejected")] == ["too early"]
