"""The agent in the browser, on a real stack: approve a ticket in the dashboard and watch the
real Claude Code's TUI in its terminal.

A headless Chromium (``services/dashboard/e2e/agent.mjs``, playwright-core) signs in through the
stack's nginx (TLS, self-signed certificate), approves a new ticket, opens the agent's terminal
and waits until xterm.js shows the TUI's banner with the pinned version. The agent runs against
the Messages API double until its ``/complete``; the test then checks the stack's own record.
The screenshot and the browser's transcript land in ``test-output/agent-browser/``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "services" / "dashboard"
OUTPUT = ROOT / "test-output" / "agent-browser"
CHROMIUM = Path("/usr/bin/chromium")
CLAUDE_CODE_VERSION = "2.1.328"
BROWSER_DEADLINE_S = 600.0


def _node() -> str:
    """node, with the dashboard's packages (playwright-core) installed."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: apt-get install -y chromium")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed")
    if not (DASHBOARD / "node_modules" / "playwright-core").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=DASHBOARD, check=True, timeout=600
        )
    return node


def _run_browser(env: dict[str, str]) -> tuple[int, dict[str, Any], list[str]]:
    """Run agent.mjs; its exit code, its RESULT and its transcript (stdout, then stderr)."""
    process = subprocess.Popen(
        [_node(), str(DASHBOARD / "e2e" / "agent.mjs")],
        cwd=DASHBOARD,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=BROWSER_DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # node and its Chromium
        stdout, stderr = process.communicate()
    transcript = stdout.splitlines() + [f"stderr: {line}" for line in stderr.splitlines()]
    result: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
    return process.returncode, result, transcript


def test_the_browser_shows_claude_code_in_the_agents_terminal(
    wait_for: Any, stack: Any, model_double: Any
) -> None:
    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    OUTPUT.mkdir(parents=True)
    work_file = stack.data_dir / "workspace" / f"browser-{secrets.token_hex(3)}.txt"
    summary = f"Wrote {work_file.name} while the browser watched ({secrets.token_hex(4)})"
    model_double.script = model_double.api.complete_ticket_script(
        str(work_file), "written with the dashboard open\n", summary
    )
    ticket_id = stack.new_ticket("Write a file while the browser watches")

    code, result, transcript = _run_browser(
        {
            "E2E_BASE_URL": stack.origin,
            "E2E_USERNAME": "admin",
            "E2E_PASSWORD": stack.password(),
            "E2E_TICKET_ID": ticket_id,
            "E2E_OUT_DIR": str(OUTPUT),
            "E2E_EXPECT_VERSION": CLAUDE_CODE_VERSION,
            "E2E_CHROMIUM": str(CHROMIUM),
        }
    )
    (OUTPUT / "transcript.txt").write_text("\n".join(transcript) + "\n", encoding="utf-8")
    if result.get("screen"):
        (OUTPUT / "screen.txt").write_text(result["screen"] + "\n", encoding="utf-8")

    # What the browser saw.
    assert code == 0 and result.get("ok"), "browser run failed:\n" + "\n".join(transcript)
    assert result["steps"][:2] == ["signed in", "approved the ticket"]
    assert result["steps"][-1] == "the terminal shows the Claude Code TUI"
    screen = result["screen"]
    assert "Claude Code" in screen, screen
    assert f"v{CLAUDE_CODE_VERSION}" in screen, screen
    assert [e for e in result["consoleErrors"] if e["text"].startswith("pageerror")] == []

    # What the stack recorded: the agent completed the ticket with the summary it was given.
    with stack.client() as client:
        stack.login(client)

        def completed() -> dict[str, Any] | None:
            tickets = client.get("/api/completed-tickets").json()["tickets"]
            return next((t for t in tickets if t["id"] == ticket_id), None)

        done = wait_for(f"{ticket_id} completed", completed)
        sessions = client.get("/api/sessions").json()
    assert done["summary"] == summary
    assert work_file.read_text() == "written with the dashboard open\n"
    # The tab the browser opened is that ticket's agent session.
    agent_sessions = [s["name"] for s in sessions if s["name"].startswith(f"claude-{ticket_id}-")]
    assert agent_sessions, [s["name"] for s in sessions]
    assert result["tab"] in (ticket_id, *agent_sessions), result["tab"]
    screenshot = Path(result["screenshot"])
    assert screenshot == OUTPUT / "agent-terminal.png"
    assert screenshot.stat().st_size > 0
