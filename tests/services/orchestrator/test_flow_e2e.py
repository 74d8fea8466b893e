"""The whole flow with the real daemon process, real tmux and a stand-in agent script."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import httpx

AGENT_SCRIPT = """#!/bin/sh
# Stand-in for the coding agent: does work in the session's directory, then completes.
set -eu
ticket="$1"
prompt="$2"
printf '%s\\n' "$prompt" > "prompt-$ticket.txt"
pwd > "cwd-$ticket.txt"
seq 1 500 | sort -rn > "work-$ticket.txt"
lines=$(wc -l < "work-$ticket.txt")
tmp="$COMPLETION_FILE.partial"
printf 'Sorted %s lines for %s <ok> & done\\n' "$lines" "$TICKET_ID" > "$tmp"
mv "$tmp" "$COMPLETION_FILE"
"""

TRICKY_TITLE = "Fix \"quotes\" & $(touch injected) 'now'"


def write_agent(tmp_path: Path) -> Path:
    script = tmp_path / "agent.sh"
    script.write_text(AGENT_SCRIPT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def daemon_env(tmp_path: Path, tmux_service: Any, script: Path, **extra: str) -> dict[str, str]:
    for folder in ("data", "logs", "completions", "tickets", "workspace"):
        (tmp_path / folder).mkdir(exist_ok=True)
    env = {
        "ORCHESTRATOR_DATA_DIR": str(tmp_path / "data"),
        "ORCHESTRATOR_LOG_DIR": str(tmp_path / "logs"),
        "ORCHESTRATOR_COMPLETION_DIR": str(tmp_path / "completions"),
        "ORCHESTRATOR_TICKETS_DIR": str(tmp_path / "tickets"),
        "ORCHESTRATOR_WORKSPACE": str(tmp_path / "workspace"),
        "ORCHESTRATOR_CLAUDE_JSON": str(tmp_path / "claude.json"),
        "ORCHESTRATOR_TMUX_URL": tmux_service.url,
        "ORCHESTRATOR_TMUX_TOKEN_FILE": str(tmux_service.token_file),
        "ORCHESTRATOR_AGENT_COMMAND": f"{script} {{ticket_id}} {{prompt}}",
        "ORCHESTRATOR_POLL_INTERVAL": "0.3",
        "ORCHESTRATOR_SESSION_CHECK_INTERVAL": "0.3",
        "ORCHESTRATOR_RESCAN_INTERVAL": "1",
    }
    env.update(extra)
    return env


def test_local_ticket_runs_to_completion(
    tmp_path: Path, tmux_service: Any, daemon_factory: Any, waiter: Any
) -> None:
    script = write_agent(tmp_path)
    env = daemon_env(tmp_path, tmux_service, script)
    (tmp_path / "tickets" / "E-1.md").write_text(
        f"---\nid: E-1\ntitle: {TRICKY_TITLE}\nlabels: [claude]\npriority: low\n---\n"
        "Sort the numbers.\n"
    )
    daemon = daemon_factory(env)
    daemon.start()
    waiter(lambda: httpx.get(daemon.url + "/api/pending-tickets").json()["count"] == 1)

    ticket = httpx.post(daemon.url + "/api/approve/E-1").json()["ticket"]
    assert ticket["status"] in ("active", "queued"), ticket  # queued: tmux answered too late

    def completed() -> list[dict[str, Any]]:
        tickets: list[dict[str, Any]] = httpx.get(daemon.url + "/api/completed-tickets").json()[
            "tickets"
        ]
        return tickets

    done = waiter(completed, timeout=60)[0]
    assert done["id"] == "E-1" and done["status"] == "completed"
    assert done["summary"] == "Sorted 500 lines for E-1 <ok> & done"
    workspace = tmp_path / "workspace"
    assert (workspace / "work-E-1.txt").read_text().splitlines()[0] == "500"
    assert (workspace / "cwd-E-1.txt").read_text().strip() == str(workspace)
    prompt = (workspace / "prompt-E-1.txt").read_text()
    assert TRICKY_TITLE in prompt and "Sort the numbers." in prompt and "/complete" in prompt
    assert not (workspace / "injected").exists()
    assert httpx.get(daemon.url + "/api/active-tickets").json()["count"] == 0
    log = (tmp_path / "logs" / "orchestrator.log").read_text()
    assert "completed E-1" in log
    daemon.stop()


def test_plane_ticket_reports_back(
    tmp_path: Path, tmux_service: Any, plane: Any, daemon_factory: Any, waiter: Any
) -> None:
    double = plane.double
    project = double.add_project("OPS")
    item = double.add_item(project, "Rotate the logs")
    double.fail_every = 5
    script = write_agent(tmp_path)
    (tmp_path / "claude.json").write_text(
        json.dumps(
            {
                "mcpServers": {
                    "plane": {
                        "env": {
                            "PLANE_API_KEY": "stale-key-from-file",
                            "PLANE_WORKSPACE_SLUG": double.slug,
                            "PLANE_API_URL": plane.url,
                        }
                    }
                }
            }
        )
    )
    env = daemon_env(tmp_path, tmux_service, script, PLANE_API_KEY=plane.api_key)
    daemon = daemon_factory(env)
    daemon.start()
    waiter(lambda: httpx.get(daemon.url + "/api/pending-tickets").json()["count"] == 1)
    assert httpx.get(daemon.url + "/health").json()["source"] == "plane"

    httpx.post(daemon.url + f"/api/approve/{item['id']}")

    waiter(lambda: double.group_of(project, item["id"]) == "completed", timeout=60)
    comments = project.comments[item["id"]]
    assert len(comments) == 1
    assert "Sorted 500 lines for" in comments[0]["comment_html"]
    assert "&lt;ok&gt; &amp; done" in comments[0]["comment_html"]
    done = waiter(
        lambda: [
            t
            for t in httpx.get(daemon.url + "/api/completed-tickets").json()["tickets"]
            if t["tracker_sync"]["state"] == "ok"
        ]
    )[0]
    assert done["identifier"] == f"OPS-{item['sequence_id']}"
    assert done["state_group"] == "completed" and done["state"] == "Done"
    patches = [p for m, p, s in double.requests if m == "PATCH" and s == 200]
    assert len(patches) == 2  # started, then completed
    log = (tmp_path / "logs" / "orchestrator.log").read_text()
    assert plane.api_key not in log and "stale-key-from-file" not in log
    daemon.stop()
