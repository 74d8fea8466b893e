"""``npm run dev``: the Vite dev server forwards each route family to the service named by
VITE_TMUX_URL / VITE_ORCHESTRATOR_URL, WebSocket terminals included."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import websockets

DASHBOARD = Path(__file__).resolve().parents[3] / "services" / "dashboard"


@pytest.fixture
def dev_server(stack: Any) -> Iterator[str]:
    vite = DASHBOARD / "node_modules" / ".bin" / "vite"
    if not vite.exists():
        pytest.fail("services/dashboard/node_modules is missing: run `npm ci` there first")
    port = stack.ports["vite"]
    env = {
        **os.environ,
        "VITE_TMUX_URL": f"http://127.0.0.1:{stack.ports['tmux']}",
        "VITE_ORCHESTRATOR_URL": f"http://127.0.0.1:{stack.ports['orchestrator']}",
    }
    log = (stack.tmp / "logs" / "vite-dev.log").open("wb")
    process = subprocess.Popen(
        [str(vite), "--host", "127.0.0.1", "--port", str(port), "--strictPort"],
        cwd=DASHBOARD,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "the Vite dev server did not start; see vite-dev.log"
                    ) from None
                time.sleep(0.2)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        log.close()


def _call(
    base: str, method: str, path: str, body: Any = None, cookie: str = ""
) -> tuple[int, Message, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            raw = response.read()
            headers = response.headers
            status = response.status
    except urllib.error.HTTPError as error:
        raw, headers, status = error.read(), error.headers, error.code
    kind = headers.get("Content-Type") or ""
    return status, headers, json.loads(raw) if "json" in kind and raw else raw


def test_dev_server_proxies_every_service(stack: Any, dev_server: str) -> None:
    status, _, page = _call(dev_server, "GET", "/tickets")
    assert status == 200 and b'<div id="root">' in page

    status, headers, _ = _call(
        dev_server, "POST", "/api/auth/login", {"username": "admin", "password": stack.password}
    )
    assert status == 204
    cookie = str(headers["Set-Cookie"]).split(";", 1)[0]
    assert cookie.startswith("aiwf_session=")
    assert _call(dev_server, "GET", "/api/auth/me", cookie=cookie)[2] == {"username": "admin"}

    status, _, pending = _call(dev_server, "GET", "/api/pending-tickets", cookie=cookie)
    assert status == 200
    assert {t["id"] for t in pending["tickets"]} == {"E2E-APPROVE", "E2E-REJECT", "E2E-RETRY"}
    status, _, health = _call(dev_server, "GET", "/api/orchestrator/health", cookie=cookie)
    assert status == 200 and health["pending_count"] == 3

    status, _, session = _call(
        dev_server, "POST", "/api/sessions", {"name": "dev-proxy"}, cookie=cookie
    )
    assert status == 201
    try:
        output = asyncio.run(_type_in_terminal(dev_server, session["id"], cookie))
        assert b"dev-42" in output
    finally:
        _call(dev_server, "DELETE", f"/api/sessions/{session['id']}", cookie=cookie)


async def _type_in_terminal(base: str, session_id: str, cookie: str) -> bytes:
    url = base.replace("http://", "ws://") + f"/ws/sessions/{session_id}"
    received = b""
    async with websockets.connect(
        url, origin=websockets.Origin(base), additional_headers={"Cookie": cookie}
    ) as socket:
        await socket.send(json.dumps({"type": "input", "data": "echo dev-$((6*7))\r"}))
        async with asyncio.timeout(30):
            while b"dev-42" not in received:
                frame = await socket.recv()
                if isinstance(frame, bytes):
                    received += frame
    return received
