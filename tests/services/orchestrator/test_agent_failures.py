"""A failing agent shows why on its ticket; without an agent credential nothing is launched."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from orchestrator.core.config import NO_AGENT_CREDENTIAL, Settings
from orchestrator.models import TicketRecord, TicketStatus
from orchestrator.service import agent_exit_reason
from orchestrator.store import TicketStore
from pydantic import ValidationError

# The first attempt runs a real bash that cannot find `claude` (exit 127, bash's own message);
# the retry finds the marker file in the workspace and keeps running like a working agent.
FAILS_ONCE = (
    "if [ -e failed-once ]; then exec sleep 600; fi; touch failed-once; "
    "exec env PATH=/nonexistent-aiwf-test /bin/bash -c 'claude --print \"$1\"' agent {prompt}"
)
NOT_FOUND = "agent: line 1: claude: command not found"


def fast(make_settings: Any, tmux_service: Any, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "tmux_url": tmux_service.url,
        "tmux_token_file": tmux_service.token_file,
        "agent_command": "sleep 600",
        "poll_interval": 0.2,
        "session_check_interval": 0.2,
        "rescan_interval": 0.5,
    }
    values.update(extra)
    built: Settings = make_settings(**values)
    return built


def tmux_sessions(tmux_service: Any) -> list[dict[str, Any]]:
    """The sessions the tmux service knows, as the orchestrator sees them."""
    token = tmux_service.token_file.read_text().strip()
    response = httpx.get(
        tmux_service.url + "/api/sessions", headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    sessions: list[dict[str, Any]] = response.json()
    return sessions


def active(url: str) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in httpx.get(url + "/api/active-tickets").json()["tickets"]}


def pending_ids(url: str) -> set[str]:
    return {t["id"] for t in httpx.get(url + "/api/pending-tickets").json()["tickets"]}


def test_failing_agent_shows_exit_status_and_output_until_retried(
    make_settings: Any, tmux_service: Any, app_server: Any, ticket_writer: Any, waiter: Any
) -> None:
    settings = fast(make_settings, tmux_service, agent_command=FAILS_ONCE)
    ticket_writer(settings.tickets_dir, "F-1", "Agent cannot start")
    url = app_server(settings)
    waiter(lambda: pending_ids(url) == {"F-1"})

    started = httpx.post(url + "/api/approve/F-1").json()["ticket"]
    session = next(s for s in tmux_sessions(tmux_service) if s["id"] == started["session_id"])
    assert "exit_status" in session  # the real service and the double both report it

    ticket = waiter(lambda: active(url)["F-1"]["status"] == "interrupted" and active(url)["F-1"])

    assert ticket["agent_exit_status"] == 127
    assert NOT_FOUND in ticket["agent_output"]
    assert ticket["error"] == f"the agent exited with status 127: {NOT_FOUND}"
    retried = httpx.post(url + "/api/retry/F-1").json()["ticket"]
    assert retried["status"] == "active" and retried["session_name"].startswith("claude-F-1-2-")
    assert (retried["agent_exit_status"], retried["agent_output"], retried["error"]) == (
        None,
        None,
        None,
    )
    listed = active(url)["F-1"]
    assert (listed["agent_exit_status"], listed["agent_output"]) == (None, None)


def test_killed_session_has_no_exit_status(
    make_settings: Any, tmux_service: Any, app_server: Any, ticket_writer: Any, waiter: Any
) -> None:
    settings = fast(make_settings, tmux_service)
    ticket_writer(settings.tickets_dir, "K-1", "Killed from outside")
    url = app_server(settings)
    waiter(lambda: pending_ids(url) == {"K-1"})
    started = httpx.post(url + "/api/approve/K-1").json()["ticket"]

    tmux_service.double.tmux("kill-session", "-t", started["session_name"])
    ticket = waiter(lambda: active(url)["K-1"]["status"] == "interrupted" and active(url)["K-1"])

    assert (ticket["agent_exit_status"], ticket["agent_output"]) == (None, None)
    assert "ended without a completion" in ticket["error"]


def seed_interrupted(settings: Settings, ticket_id: str) -> None:
    """Leave an interrupted ticket in the data directory, as an earlier run would have."""
    store = TicketStore(settings.data_dir)
    store.load()
    store.active[ticket_id] = TicketRecord(
        id=ticket_id,
        identifier=ticket_id,
        title="Failed earlier",
        source="local",
        status=TicketStatus.INTERRUPTED,
        attempt=1,
        error="the agent exited with status 1",
        agent_exit_status=1,
    )
    asyncio.run(store.save("active"))


def test_without_agent_credential_approve_and_retry_are_refused(
    make_settings: Any,
    tmux_service: Any,
    app_server: Any,
    ticket_writer: Any,
    waiter: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_AGENT_CREDENTIAL", "none")
    settings = fast(make_settings, tmux_service)
    ticket_writer(settings.tickets_dir, "N-1", "No key")
    seed_interrupted(settings, "N-2")
    url = app_server(settings)
    waiter(lambda: pending_ids(url) == {"N-1"})
    lists = [settings.data_dir / f"{name}-tickets.json" for name in ("pending", "active")]
    waiter(lambda: "N-1" in lists[0].read_text())
    state = [path.read_bytes() for path in lists]

    approve = httpx.post(url + "/api/approve/N-1")
    retry = httpx.post(url + "/api/retry/N-2")

    assert (approve.status_code, approve.json()) == (409, {"detail": NO_AGENT_CREDENTIAL})
    assert (retry.status_code, retry.json()) == (409, {"detail": NO_AGENT_CREDENTIAL})
    assert pending_ids(url) == {"N-1"}
    assert active(url)["N-2"]["status"] == "interrupted"
    assert [path.read_bytes() for path in lists] == state
    assert tmux_sessions(tmux_service) == []
    health = httpx.get(url + "/health").json()
    assert (health["agent_credential"], health["agent_ready"]) == ("none", False)
    assert (health["status"], health["problems"]) == ("healthy", [])


async def test_without_agent_credential_queued_tickets_wait(
    make_settings: Any, make_orchestrator: Any, tmux_service: Any
) -> None:
    settings = fast(make_settings, tmux_service, agent_credential="none")
    orchestrator = await make_orchestrator(settings)
    orchestrator.store.active["Q-1"] = TicketRecord(
        id="Q-1",
        identifier="Q-1",
        title="Queued before",
        source="local",
        status=TicketStatus.QUEUED,
    )

    await orchestrator.check_sessions()

    assert orchestrator.store.active["Q-1"].status == TicketStatus.QUEUED
    assert await orchestrator.tmux.list() == []


@pytest.mark.parametrize(
    ("credential", "shown", "ready"),
    [("api_key", "api_key", True), ("login", "login", True), ("", "unknown", True)],
)
def test_health_names_the_agent_credential(
    make_settings: Any,
    app_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    credential: str,
    shown: str,
    ready: bool,
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_AGENT_CREDENTIAL", credential)
    body = httpx.get(app_server(make_settings()) + "/health").json()
    assert (body["agent_credential"], body["agent_ready"]) == (shown, ready)


def test_unknown_agent_credential_is_a_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_AGENT_CREDENTIAL", "apikey")
    with pytest.raises(ValidationError, match="agent_credential"):
        Settings()


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (None, "the agent exited with status 2"),
        ("\n  \n", "the agent exited with status 2"),
        (
            "$ claude\nError: invalid x-api-key   \n\n\n",
            "the agent exited with status 2: Error: invalid x-api-key",
        ),
        ("x" * 1000, "the agent exited with status 2: " + "x" * 300),
    ],
)
def test_exit_reason_is_one_line(output: str | None, expected: str) -> None:
    assert agent_exit_reason(2, output) == expected


def test_an_api_error_reported_by_the_agent_shows_on_its_ticket(
    make_settings: Any, tmux_service: Any, app_server: Any, ticket_writer: Any, waiter: Any
) -> None:
    """Claude Code's StopFailure hook (installed by aiwf) writes failure-<id>.json; the agent
    itself waits at its prompt, so the ticket stays active and says why."""
    settings = fast(make_settings, tmux_service)
    ticket_writer(settings.tickets_dir, "K-1", "The key is wrong")
    url = app_server(settings)
    waiter(lambda: pending_ids(url) == {"K-1"})
    assert httpx.post(url + "/api/approve/K-1").status_code == 200
    report = settings.completion_dir / "failure-K-1.json"
    report.write_text(
        '{"hook_event_name": "StopFailure", "error": "authentication_failed",'
        ' "last_assistant_message": "Invalid API key \\u00b7 Fix external API key"}'
    )
    ticket = waiter(lambda: (t := active(url)["K-1"])["error"] and t)
    assert ticket["status"] == "active"
    assert ticket["error"].startswith(
        "the agent stopped on an API error (authentication_failed): Invalid API key"
    )
    waiter(lambda: not report.exists())
    assert list((settings.archive_dir / "failures").glob("*-failure-K-1.json"))
    # A report that is not JSON is set aside, never read as anything.
    broken = settings.completion_dir / "failure-K-1.json"
    broken.write_text("not json")
    waiter(lambda: not broken.exists())
    assert list((settings.archive_dir / "rejected").glob("*-failure-K-1.json"))
