"""tmux briefly unavailable (its client ended by a signal, its server going away, the service
shutting down) answers 503 with Retry-After, not 500; real service, tmux and signals.

Each test freezes the tmux server (SIGSTOP) so that the tmux client the service runs for a
request waits, then ends that client, the server, or the whole service as a container stop does.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

TOKEN = "service-token-for-tests-0123456789"


def tmux_client_of(service: Any, command: str, timeout: float = 30) -> int:
    """The pid of the tmux client running ``command`` that the service process started."""
    parent = str(service.process.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent_of_entry = stat.rsplit(")", 1)[1].split()[1]
            if parent_of_entry == parent and command.encode() in argv:
                return int(entry.name)
        time.sleep(0.02)
    raise AssertionError(f"the service ran no tmux {command} within {timeout} s")


@contextmanager
def frozen_tmux_server(service: Any) -> Iterator[int]:
    """Stop the tmux server so its clients wait for an answer; resumed afterwards."""
    pid = int(service.tmux("display-message", "-p", "#{pid}").stdout)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


class Request(threading.Thread):
    """One HTTP request in the background, so the test can act while it waits on tmux."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.response: httpx.Response | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            self.response = httpx.get(self.url, headers=headers, timeout=60)
        except Exception as error:  # reported by result()
            self.error = error

    def result(self) -> httpx.Response:
        self.join(60)
        assert self.error is None, self.error
        assert self.response is not None, "the request did not finish"
        return self.response


def kill_client(service: Any, _: int) -> None:
    os.kill(tmux_client_of(service, "list-sessions"), signal.SIGKILL)


def kill_server(service: Any, server_pid: int) -> None:
    tmux_client_of(service, "list-sessions")
    os.kill(server_pid, signal.SIGKILL)


def assert_unavailable(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert detail.startswith("tmux is unavailable for a moment (")
    assert reason in detail


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        (kill_client, "tmux list-sessions was ended by SIGKILL"),
        (kill_server, "the tmux server went away during list-sessions: server exited"),
    ],
)
def test_list_answers_503_when_tmux_goes_away_mid_command(
    service: Any, end: Callable[[Any, int], None], reason: str
) -> None:
    created = service.create_session(name="keeps-running")
    with frozen_tmux_server(service) as server_pid:
        request = Request(service.base_url + "/api/sessions")
        request.start()
        end(service, server_pid)
        assert_unavailable(request.result(), reason)
    assert "Traceback" not in service.log_path.read_text()
    if end is kill_client:
        with service.token_client() as client:
            listed = client.get("/api/sessions").json()
        assert [(s["id"], s["alive"]) for s in listed] == [(created["id"], True)]


def test_list_answers_503_while_the_service_stops(own_group_service: Any) -> None:
    """A container stop signals the service's process group: uvicorn and the tmux client the
    request runs. That client exits 0 with no output, which must not read as "no sessions"."""
    running = own_group_service
    created = running.create_session(name="survives-the-stop")
    with frozen_tmux_server(running):
        request = Request(running.base_url + "/api/sessions")
        request.start()
        tmux_client_of(running, "list-sessions")
        os.killpg(running.process.pid, signal.SIGTERM)
        response = request.result()
    assert_unavailable(response, "tmux list-sessions was cut short by the service shutdown")
    # uvicorn ends a graceful stop by re-raising the signal it caught.
    assert running.process.wait(30) == -signal.SIGTERM
    assert "Traceback" not in running.log_path.read_text()
    saved = json.loads((running.data_dir / "sessions.json").read_text())
    assert [record["alive"] for record in saved["sessions"]] == [True]
    running.start()
    with running.token_client() as client:
        listed = client.get("/api/sessions").json()
    assert [(s["id"], s["alive"]) for s in listed] == [(created["id"], True)]


async def test_terminal_handshake_answers_503_when_tmux_goes_away(service: Any) -> None:
    created = service.create_session(name="terminal-target")
    url = f"{service.ws_base}/ws/sessions/{created['id']}"
    with frozen_tmux_server(service):
        killer = asyncio.create_task(asyncio.to_thread(kill_client, service, 0))
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {TOKEN}"}, open_timeout=60
            ):
                pass
        await killer
    response = refused.value.response
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    detail = json.loads(response.body or b"{}")["detail"]
    assert "tmux list-sessions was ended by SIGKILL" in detail
    assert "Traceback" not in service.log_path.read_text()
