"""Tracker updates that fail are kept, shown and retried; logs survive rotation."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from orchestrator.core.logging import configure_logging
from orchestrator.models import TicketStatus, utcnow


async def test_failed_tracker_update_is_shown_and_retried(
    plane: Any, tmux_service: Any, make_settings: Any, make_orchestrator: Any
) -> None:
    project = plane.double.add_project("TRK")
    item = plane.double.add_item(project, "Track me")
    settings = make_settings(
        plane_api_key=plane.api_key,
        plane_workspace_slug=plane.double.slug,
        plane_api_url=plane.url,
        tmux_url=tmux_service.url,
        tmux_token_file=tmux_service.token_file,
        agent_command="sleep 600",
    )
    orchestrator = await make_orchestrator(settings)
    await orchestrator.sync_once()
    plane.double.refuse_updates = True

    ticket = await orchestrator.approve(item["id"])
    assert ticket.status == TicketStatus.ACTIVE
    assert ticket.tracker_sync.state == "pending"
    await orchestrator.push_tracker_updates()

    failed = orchestrator.store.active[item["id"]]
    assert failed.tracker_sync.state == "failed"
    assert failed.tracker_sync.attempts == 1
    assert "400" in (failed.tracker_sync.error or "")
    assert failed.tracker_ops == ["start"]
    assert plane.double.group_of(project, item["id"]) == "unstarted"
    saved = (settings.data_dir / "active-tickets.json").read_text()
    assert '"failed"' in saved and '"start"' in saved

    await orchestrator.push_tracker_updates()  # not due yet: no new attempt
    assert orchestrator.store.active[item["id"]].tracker_sync.attempts == 1

    plane.double.refuse_updates = False
    failed.next_tracker_try = utcnow() - timedelta(seconds=1)
    await orchestrator.push_tracker_updates()

    synced = orchestrator.store.active[item["id"]]
    assert synced.tracker_sync.state == "ok" and synced.tracker_ops == []
    assert synced.state_group == "started"
    assert plane.double.group_of(project, item["id"]) == "started"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """configure_logging replaces the root handlers; give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_log_file_is_reopened_after_rotation(tmp_path: Path) -> None:
    problems = configure_logging(tmp_path, "INFO")
    assert problems == []
    logger = logging.getLogger("orchestrator.rotation-test")
    log_file = tmp_path / "orchestrator.log"
    logger.info("before rotation")
    log_file.rename(tmp_path / "orchestrator.log.1")
    logger.info("after rotation")
    for handler in logging.getLogger().handlers:
        handler.flush()

    assert "before rotation" in (tmp_path / "orchestrator.log.1").read_text()
    assert "after rotation" in log_file.read_text()
    assert "before rotation" not in log_file.read_text()

    with open(log_file, "r+") as handle:  # copytruncate
        handle.truncate(0)
    logger.info("after truncation")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert log_file.read_text().strip().endswith("after truncation")


def test_unwritable_log_dir_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    problems = configure_logging(blocker / "logs", "INFO")
    assert len(problems) == 1 and str(blocker / "logs") in problems[0]
