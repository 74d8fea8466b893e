"""The HTTP API served by the real app (lifespan, loops) against the tmux double."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

TICKET_KEYS = {
    "id",
    "identifier",
    "title",
    "description",
    "priority",
    "labels",
    "state",
    "state_group",
    "url",
    "source",
    "status",
    "session_id",
    "session_name",
    "created_at",
    "updated_at",
    "approved_at",
    "started_at",
    "completed_at",
    "summary",
    "tracker_sync",
    "error",
    "agent_exit_status",
    "agent_output",
    "branch",
    "commits",
    "diffstat",
    "change_error",
}


def fast(make_settings: Any, tmux_service: Any, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "tmux_url": tmux_service.url,
        "tmux_token_file": tmux_service.token_file,
        "agent_command": "sleep 600",
        "poll_interval": 0.2,
        "session_check_interval": 0.2,
        "rescan_interval": 0.5,
    }
    values.update(extra)
    return make_settings(**values)


def pending_ids(url: str) -> set[str]:
    body = httpx.get(url + "/api/pending-tickets").json()
    assert body["count"] == len(body["tickets"])
    return {t["id"] for t in body["tickets"]}


def active(url: str) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in httpx.get(url + "/api/active-tickets").json()["tickets"]}


def test_health_reports_the_contract_keys(
    make_settings: Any, tmux_service: Any, app_server: Any, waiter: Any
) -> None:
    url = app_server(fast(make_settings, tmux_service))
    body = httpx.get(url + "/health").json()
    assert set(body) == {
        "status",
        "tmux_service",
        "pending_count",
        "active_count",
        "completed_count",
        "source",
        "problems",
        "agent_credential",
        "agent_ready",
    }
    assert body["tmux_service"] is True and body["source"] == "local"
    assert body["status"] == "healthy", body["problems"]


def test_health_degrades_with_a_clear_reason(
    make_settings: Any, app_server: Any, tmp_path: Path
) -> None:
    claude_json = tmp_path / "claude.json"
    claude_json.write_text('{"mcpServers": {"plane": {"env": {"PLANE_API_KEY": "k"')
    url = app_server(make_settings(claude_json=claude_json, tmux_url="http://127.0.0.1:9"))
    response = httpx.get(url + "/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded" and body["tmux_service"] is False
    assert any("not valid JSON" in p and str(claude_json) in p for p in body["problems"])
    assert any("tmux-sessions" in p for p in body["problems"])


def test_missing_workspace_slug_is_named(
    make_settings: Any, app_server: Any, tmp_path: Path
) -> None:
    claude_json = tmp_path / "claude.json"
    claude_json.write_text(json.dumps({"mcpServers": {"plane": {"env": {"PLANE_API_KEY": "s3"}}}}))
    url = app_server(make_settings(claude_json=claude_json))
    body = httpx.get(url + "/health").json()
    assert body["source"] == "local"
    assert any("PLANE_WORKSPACE_SLUG" in p for p in body["problems"])
    assert "s3" not in json.dumps(body)


def test_approve_reject_retry_delete(
    make_settings: Any, tmux_service: Any, app_server: Any, ticket_writer: Any, waiter: Any
) -> None:
    settings = fast(make_settings, tmux_service)
    for ticket_id in ("A-1", "A-2", "A-3"):
        ticket_writer(settings.tickets_dir, ticket_id, f"Ticket {ticket_id}")
    ticket_writer(settings.tickets_dir, "B-1", "Unlabelled", labels="other")
    url = app_server(settings)
    waiter(lambda: pending_ids(url) == {"A-1", "A-2", "A-3"})

    approved = httpx.post(url + "/api/approve/A-1")
    assert approved.status_code == 200
    ticket = approved.json()["ticket"]
    assert set(ticket) == TICKET_KEYS
    assert ticket["status"] == "active"
    assert ticket["session_name"].startswith("claude-A-1-1-")
    assert ticket["session_name"] in tmux_service.double.live_names()

    again = httpx.post(url + "/api/approve/A-1")
    assert again.status_code == 409 and "pending" in again.json()["detail"]
    missing = httpx.post(url + "/api/approve/NOPE")
    assert missing.status_code == 404 and "NOPE" in missing.json()["detail"]
    assert httpx.post(url + "/api/retry/A-1").status_code == 409

    assert httpx.post(url + "/api/reject/A-2").status_code == 200
    marks = settings.data_dir / "sync-state.json"
    before = json.loads(marks.read_text())["local:A-2.md"]
    os.utime(settings.tickets_dir / "A-2.md", (time.time() + 5, time.time() + 5))
    waiter(lambda: json.loads(marks.read_text())["local:A-2.md"] != before)
    assert "A-2" not in pending_ids(url)

    tmux_service.double.tmux("kill-session", "-t", ticket["session_name"])
    interrupted = waiter(lambda: active(url)["A-1"]["status"] == "interrupted" and active(url))
    assert "ended without a completion" in interrupted["A-1"]["error"]
    retried = httpx.post(url + "/api/retry/A-1").json()["ticket"]
    assert retried["status"] == "active" and retried["session_name"].startswith("claude-A-1-2-")

    assert httpx.delete(url + "/api/tickets/A-1").status_code == 204
    assert "A-1" not in active(url)
    waiter(lambda: retried["session_name"] not in tmux_service.double.live_names())
    assert httpx.delete(url + "/api/tickets/A-1").status_code == 404
    health = httpx.get(url + "/health").json()
    assert (health["pending_count"], health["active_count"]) == (1, 0)


def test_concurrency_cap_queues_and_time_limit_marks_overdue(
    make_settings: Any, tmux_service: Any, app_server: Any, ticket_writer: Any, waiter: Any
) -> None:
    settings = fast(make_settings, tmux_service, max_active=1, session_time_limit=1.0)
    for ticket_id in ("C-1", "C-2"):
        ticket_writer(settings.tickets_dir, ticket_id, ticket_id)
    url = app_server(settings)
    waiter(lambda: pending_ids(url) == {"C-1", "C-2"})

    assert httpx.post(url + "/api/approve/C-1").json()["ticket"]["status"] == "active"
    assert httpx.post(url + "/api/approve/C-2").json()["ticket"]["status"] == "queued"
    overdue = waiter(lambda: active(url)["C-1"]["status"] == "overdue" and active(url))
    assert overdue["C-2"]["status"] == "queued"

    completion = settings.completion_dir / "completion-C-1.txt"
    completion.write_text("done")
    waiter(lambda: active(url).get("C-2", {}).get("status") in ("active", "overdue"))
    completed = httpx.get(url + "/api/completed-tickets").json()
    assert [t["id"] for t in completed["tickets"]] == ["C-1"]
    assert completed["tickets"][0]["summary"] == "done"


def test_metrics_exposition(
    make_settings: Any, tmux_service: Any, app_server: Any, ticket_writer: Any, waiter: Any
) -> None:
    settings = fast(make_settings, tmux_service)
    ticket_writer(settings.tickets_dir, "M-1", "Metric")
    url = app_server(settings)
    waiter(lambda: pending_ids(url) == {"M-1"})
    httpx.post(url + "/api/approve/M-1")
    text = httpx.get(url + "/metrics").text
    assert "orchestrator_approvals_total 1.0" in text
    assert "orchestrator_active_tickets 1.0" in text
    assert "orchestrator_session_duration_seconds_bucket" in text
    assert "orchestrator_tracker_update_failures_total" in text


def test_cors_allows_only_configured_origins(
    make_settings: Any, tmux_service: Any, app_server: Any
) -> None:
    url = app_server(fast(make_settings, tmux_service, cors_origins="https://ops.example, *"))
    allowed = httpx.options(
        url + "/api/pending-tickets",
        headers={"Origin": "https://ops.example", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    other = httpx.get(url + "/api/pending-tickets", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_plane_webhook_signature_and_dedup(
    make_settings: Any, tmux_service: Any, app_server: Any, tmp_path: Path
) -> None:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text("hook-secret\n")
    url = app_server(fast(make_settings, tmux_service, webhook_secret_file=secret_file))
    body = json.dumps({"event": "issue", "action": "updated"}).encode()
    signature = hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    headers = {"X-Plane-Signature": signature, "X-Plane-Delivery": "d-1"}

    first = httpx.post(url + "/api/webhooks/plane", content=body, headers=headers)
    repeat = httpx.post(url + "/api/webhooks/plane", content=body, headers=headers)
    forged = httpx.post(
        url + "/api/webhooks/plane",
        content=body + b" ",
        headers={**headers, "X-Plane-Delivery": "d-2"},
    )

    assert (first.status_code, repeat.status_code, forged.status_code) == (202, 200, 401)


def test_missing_workspace_fails_the_ticket_with_the_reason(
    make_settings: Any, tmux_service: Any, app_server: Any, ticket_writer: Any, waiter: Any
) -> None:
    settings = fast(make_settings, tmux_service, workspace="/nonexistent/workspace")
    ticket_writer(settings.tickets_dir, "W-1", "Needs a workspace")
    url = app_server(settings)
    waiter(lambda: pending_ids(url) == {"W-1"})

    ticket = httpx.post(url + "/api/approve/W-1").json()["ticket"]

    assert ticket["status"] == "failed"
    assert "422" in ticket["error"] and "retry" in ticket["error"]
    again = httpx.post(url + "/api/retry/W-1").json()["ticket"]
    assert again["status"] == "failed"


def test_wrong_service_token_is_reported(
    make_settings: Any, tmux_service: Any, app_server: Any, tmp_path: Path, waiter: Any
) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token")
    url = app_server(fast(make_settings, tmux_service, tmux_token_file=wrong))

    def problems() -> list[str]:
        body = httpx.get(url + "/health").json()
        found: list[str] = [p for p in body["problems"] if "ORCHESTRATOR_TMUX_TOKEN_FILE" in p]
        return found if body["status"] == "degraded" else []

    assert "401" in waiter(problems)[0]
