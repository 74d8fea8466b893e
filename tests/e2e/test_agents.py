"""Agents for real: an approved ticket runs the real, pinned Claude Code in the sandbox as an
unprivileged user, against the Messages API double, until its ``/complete`` command completes
the ticket; and each way this can fail is shown on the ticket or refused, never lost.

The tests share the session's stack and run in file order; each new ticket has a new id, and a
test that changes the settings puts them back before it ends.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.engine, pytest.mark.e2e]


def _tickets(client: httpx.Client, kind: str) -> dict[str, dict[str, Any]]:
    body = client.get(f"/api/{kind}-tickets").json()
    return {ticket["id"]: ticket for ticket in body["tickets"]}


@contextmanager
def _logged_in(stack: Any) -> Iterator[httpx.Client]:
    with stack.client() as client:
        stack.login(client)
        yield client


def _approve(
    stack: Any, client: httpx.Client, ticket_id: str, wait_for: Callable[..., Any]
) -> httpx.Response:
    wait_for(f"{ticket_id} pending", lambda: ticket_id in _tickets(client, "pending"))
    return client.post(f"/api/approve/{ticket_id}", headers={"Origin": stack.origin})


def _agent_processes() -> dict[int, dict[str, str]]:
    """Host pid -> facts of every running Claude Code (any container, seen from the host)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
            status = (entry / "status").read_text()
            mount_ns = os.readlink(entry / "ns" / "mnt")
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not exe.endswith("/claude"):
            continue
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        found[int(entry.name)] = {
            "uid": uid,
            "mount_ns": mount_ns,
            "argv": " ".join(part.decode(errors="replace") for part in argv),
        }
    return found


def test_an_approved_ticket_runs_claude_code_in_the_sandbox_to_completion(
    wait_for: Any, stack: Any, model_double: Any
) -> None:
    workspace = stack.data_dir / "workspace"
    work_file = workspace / f"work-{secrets.token_hex(3)}.txt"
    summary = f"Wrote {work_file.name} and read it back ({secrets.token_hex(4)})"
    model_double.script = model_double.api.complete_ticket_script(
        str(work_file), "the agent's work\n", summary
    )
    before = len(model_double.server.main_requests())
    with _logged_in(stack) as client:
        ticket_id = stack.new_ticket("Write a file")
        approved = _approve(stack, client, ticket_id, wait_for)
        assert approved.status_code == 200, approved.text
        done = wait_for(
            f"{ticket_id} completed", lambda: _tickets(client, "completed").get(ticket_id)
        )
        assert done["summary"] == summary
        sessions = client.get("/api/sessions").json()
    # The agent did the work with its real tools, in the workspace, as the agent's uid.
    assert work_file.read_text() == "the agent's work\n"
    assert work_file.stat().st_uid == 1000
    # It was the real Claude Code, with the configured key, through the double.
    requests = model_double.server.main_requests()[before:]
    assert len(requests) >= 3
    assert all(request.has_api_key(model_double.key) for request in requests)
    assert "claude-cli/2.1.328" in requests[0].headers.get("user-agent", "")
    # The agent runs as uid 1000 in another mount namespace than this host's.
    agents = wait_for("a running claude", _agent_processes, timeout=30)
    host_ns = os.readlink("/proc/self/ns/mnt")
    ours = {pid: facts for pid, facts in agents.items() if "--permission-mode" in facts["argv"]}
    assert ours, agents
    for facts in ours.values():
        assert facts["uid"] == "1000", facts
        assert facts["mount_ns"] != host_ns, facts
    # The key is nowhere it could leak: not in a command line, a session, a container's
    # configuration, a log or the history.
    everything_visible = [
        subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout,
        json.dumps(sessions),
        (stack.data_dir / "state").joinpath("history.jsonl").read_text()
        if (stack.data_dir / "state" / "history.jsonl").exists()
        else "",
    ]
    for service, row in stack.ps().items():
        everything_visible.append(
            subprocess.run(["docker", "inspect", row["id"]], capture_output=True, text=True).stdout
        )
        everything_visible.append(stack.aiwf("logs", service, check=False).stdout)
    assert not any(model_double.key in text for text in everything_visible)


def test_a_web_terminal_is_an_unprivileged_shell_in_the_sandbox(wait_for: Any, stack: Any) -> None:
    marker = stack.data_dir / "workspace" / f"whoami-{secrets.token_hex(3)}.txt"
    with _logged_in(stack) as client:
        created = client.post(
            "/api/sessions",
            json={"name": f"shell-{secrets.token_hex(3)}"},
            headers={"Origin": stack.origin},
        )
        assert created.status_code == 201, created.text
        command = f"echo $(id -u) $(readlink /proc/self/ns/mnt) > {marker}"
        typed = client.post(
            f"/api/sessions/{created.json()['id']}/input",
            json={"data": command, "enter": True},
            headers={"Origin": stack.origin},
        )
        assert typed.status_code in (200, 204), typed.text
    answer = wait_for("the shell's answer", lambda: marker.exists() and marker.read_text().split())
    uid, mount_ns = answer
    assert uid == "1000"
    assert mount_ns != os.readlink("/proc/self/ns/mnt")


def test_a_missing_agent_program_leaves_its_exit_status_on_the_ticket(
    wait_for: Any, stack: Any
) -> None:
    missing = {"services": {"orchestrator": {"agent_command": "no-such-agent-xyz {prompt}"}}}
    stack.write_inventory(missing)
    try:
        stack.aiwf("up")
        with _logged_in(stack) as client:
            ticket_id = stack.new_ticket("Run a program that is not there")
            assert _approve(stack, client, ticket_id, wait_for).status_code == 200

            def interrupted() -> dict[str, Any] | None:
                ticket = _tickets(client, "active").get(ticket_id)
                return ticket if ticket and ticket["status"] == "interrupted" else None

            ticket = wait_for(f"{ticket_id} interrupted", interrupted)
        assert ticket["agent_exit_status"] == 127
        assert "no-such-agent-xyz" in ticket["agent_output"]
        assert "not found" in ticket["error"] and "127" in ticket["error"]
    finally:
        stack.write_inventory()
        stack.aiwf("up")


def test_a_refused_key_shows_the_agents_api_error_on_the_ticket(
    wait_for: Any, stack: Any, model_double: Any
) -> None:
    ticket_id = stack.new_ticket("Meet a refused key")
    refused = model_double.api.ApiError.authentication()
    model_double.script = lambda request: (
        refused if ticket_id in json.dumps(request.body) else "Nothing to do."
    )
    with _logged_in(stack) as client:
        assert _approve(stack, client, ticket_id, wait_for).status_code == 200

        def reported() -> dict[str, Any] | None:
            ticket = _tickets(client, "active").get(ticket_id)
            return ticket if ticket and "API error" in (ticket["error"] or "") else None

        ticket = wait_for(f"{ticket_id} showing the API error", reported)
    assert ticket["status"] == "active"  # the agent waits at its prompt for a person
    assert "authentication" in ticket["error"]


def test_agents_outlive_a_new_terminal_service(stack: Any) -> None:
    """Recreating tmux-sessions (an upgrade of the API) leaves the sandbox and its sessions."""
    with _logged_in(stack) as client:
        before = {s["id"] for s in client.get("/api/sessions").json() if s["alive"]}
    assert before
    ids = stack.container_ids()
    stack.write_inventory(
        {"services": {"tmux_sessions": {"environment": {"AIWF_E2E_MARK": "new"}}}}
    )
    try:
        stack.aiwf("up")
        after_ids = stack.container_ids()
        assert after_ids["tmux-sessions"] != ids["tmux-sessions"]
        assert after_ids["sandbox"] == ids["sandbox"]
        with _logged_in(stack) as client:
            after = {s["id"] for s in client.get("/api/sessions").json() if s["alive"]}
        assert before <= after
    finally:
        stack.write_inventory()
        stack.aiwf("up")


def test_up_refuses_to_recreate_the_sandbox_while_an_agent_runs(stack: Any) -> None:
    """The first test's agent still runs (idle at its prompt after completing)."""
    from aiwf.engine.docker_client import connect
    from aiwf.engine.exec import exec_output

    socket = str(Path(stack.settings["paths"]["tmux_socket_dir"]) / "default")
    listing = ["tmux", "-S", socket, "list-sessions", "-F", "#{@aiwf_ticket}"]
    _code, running = exec_output(connect(), stack.ps()["sandbox"]["id"], listing)
    tickets = [line for line in running.split() if line.startswith("AGENT-")]
    assert tickets, running
    before = stack.container_ids()
    stack.write_inventory({"services": {"sandbox": {"resources": {"memory": "3g"}}}})
    try:
        refused = stack.aiwf("up", check=False)
        assert refused.returncode != 0
        assert "the sandbox would be recreated" in refused.stderr
        assert any(ticket in refused.stderr for ticket in tickets), refused.stderr
        assert "--force" in refused.stderr
        assert stack.container_ids() == before
    finally:
        stack.write_inventory()
    assert "nothing to do" in stack.aiwf("up").stdout


def test_without_a_credential_approvals_are_refused_before_any_launch(
    wait_for: Any, stack: Any
) -> None:
    settings = json.loads(json.dumps(stack.settings))
    settings["agent"].pop("api_key_file")
    original = stack.settings
    stack.settings = settings
    stack.write_inventory()
    try:
        checked = stack.aiwf("check")
        assert "no credential configured" in checked.stdout
        stack.aiwf("up", "--force")  # the sandbox loses its key: recreated
        with _logged_in(stack) as client:
            health = client.get("/api/orchestrator/health").json()
            assert health["agent_ready"] is False and health["agent_credential"] == "none"
            ticket_id = stack.new_ticket("Nothing can run this")
            refused = _approve(stack, client, ticket_id, wait_for)
            assert refused.status_code == 409
            assert "no agent credential configured" in refused.json()["detail"]
            assert ticket_id in _tickets(client, "pending")
            names = [s["name"] for s in client.get("/api/sessions").json()]
            assert not any(ticket_id in name for name in names)
    finally:
        stack.settings = original
        stack.write_inventory()
        stack.aiwf("up", "--force")
