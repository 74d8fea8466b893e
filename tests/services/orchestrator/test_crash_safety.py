"""kill -9 while the daemon writes state in a loop: every file parses, nothing lost or doubled."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx

STATE_FILES = ("pending-tickets.json", "active-tickets.json", "completed-tickets.json")


def hammer(url: str, stop: threading.Event, approved: set[str], rejected: set[str]) -> None:
    """Approve, reject and retry as fast as the daemon answers; remember what it confirmed."""
    client = httpx.Client(timeout=2)
    while not stop.is_set():
        try:
            pending = client.get(url + "/api/pending-tickets").json()["tickets"]
            for ticket in pending[:3]:
                action = "reject" if int(ticket["id"].split("-")[1]) % 5 == 0 else "approve"
                response = client.post(f"{url}/api/{action}/{ticket['id']}")
                if response.status_code == 200:
                    (rejected if action == "reject" else approved).add(ticket["id"])
            for ticket in client.get(url + "/api/active-tickets").json()["tickets"]:
                if ticket["status"] == "interrupted":
                    client.post(f"{url}/api/retry/{ticket['id']}")
        except (httpx.HTTPError, ValueError, KeyError):
            time.sleep(0.01)
    client.close()


def read_state(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: json.loads((data_dir / name).read_text()) for name in STATE_FILES}


def test_kill_nine_during_writes_loses_nothing(
    tmp_path: Path, tmux_service: Any, daemon_factory: Any, waiter: Any
) -> None:
    tickets = tmp_path / "tickets"
    data = tmp_path / "data"
    for folder in (tickets, data, tmp_path / "completions", tmp_path / "workspace"):
        folder.mkdir()
    env = {
        "ORCHESTRATOR_DATA_DIR": str(data),
        "ORCHESTRATOR_LOG_DIR": str(tmp_path / "logs"),
        "ORCHESTRATOR_COMPLETION_DIR": str(tmp_path / "completions"),
        "ORCHESTRATOR_TICKETS_DIR": str(tickets),
        "ORCHESTRATOR_WORKSPACE": str(tmp_path / "workspace"),
        "ORCHESTRATOR_CLAUDE_JSON": str(tmp_path / "none.json"),
        "ORCHESTRATOR_TMUX_URL": tmux_service.url,
        "ORCHESTRATOR_TMUX_TOKEN_FILE": str(tmux_service.token_file),
        "ORCHESTRATOR_AGENT_COMMAND": "true",
        "ORCHESTRATOR_MAX_ACTIVE": "4",
        "ORCHESTRATOR_POLL_INTERVAL": "0.05",
        "ORCHESTRATOR_SESSION_CHECK_INTERVAL": "0.05",
    }
    approved: set[str] = set()
    rejected: set[str] = set()
    written = 0
    rng = random.Random(7)
    for _round in range(6):
        for _ in range(25):
            written += 1
            (tickets / f"K-{written}.md").write_text(
                f"---\nid: K-{written}\ntitle: Ticket {written}\nlabels: [claude]\n---\nBody\n"
            )
        daemon = daemon_factory(env)
        daemon.start()
        stop = threading.Event()
        worker = threading.Thread(target=hammer, args=(daemon.url, stop, approved, rejected))
        worker.start()
        time.sleep(rng.uniform(1.0, 2.0))
        daemon.kill()
        stop.set()
        worker.join(timeout=30)
        for name in STATE_FILES:
            if (data / name).exists():
                json.loads((data / name).read_text())  # parses after every kill

    final = daemon_factory(env)
    final.start()
    waiter(lambda: sum(len(v) for v in read_state(data).values()) + len(rejected) >= written)
    final.stop()
    assert not list(data.glob(".*.tmp")), "interrupted writes were not cleaned up on start"

    state = read_state(data)
    ids = [ticket["id"] for tickets_in_file in state.values() for ticket in tickets_in_file]
    assert len(ids) == len(set(ids)), "a ticket appears twice"
    every = {f"K-{n}" for n in range(1, written + 1)}
    dismissed = set(json.loads((data / "dismissed-tickets.json").read_text()))
    assert set(ids) | dismissed == every, "a ticket was lost"
    assert not set(ids) & dismissed
    assert rejected <= dismissed
    running = {t["id"] for t in state["active-tickets.json"]} | {
        t["id"] for t in state["completed-tickets.json"]
    }
    assert approved <= running, "an approval the daemon confirmed was lost"
    assert len(approved) >= 3 and rejected, "the hammer did too little to prove anything"
