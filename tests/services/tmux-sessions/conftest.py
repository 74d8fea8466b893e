"""Fixtures: the service as a real uvicorn process on a free loopback port, a private tmux
socket and data dir, and helpers for real HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

TOKEN = "service-token-for-tests-0123456789"
PASSWORD = "bootstrap-password-1"
ORIGIN = "https://aiwf.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    """One running ``python -m tmux_sessions`` with its own socket, data dir and secrets."""

    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    # In a process group of its own, as PID 1 of a container is: a stop signal sent to the
    # group reaches the service and the tmux clients it runs, not pytest.
    own_process_group: bool = False
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "tmux.sock"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "service.log"

    def env(self) -> dict[str, str]:
        secrets = self.root / "secrets"
        secrets.mkdir(exist_ok=True)
        (secrets / "key").write_text("cookie-signing-key-for-tests-0123456789\n")
        (secrets / "token").write_text(TOKEN + "\n")
        (secrets / "password").write_text(PASSWORD + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "TMUX_SESSIONS_"))}
        env.update(
            TMUX_SESSIONS_HOST="127.0.0.1",
            TMUX_SESSIONS_PORT=str(self.port),
            TMUX_SESSIONS_DATA_DIR=str(self.data_dir),
            TMUX_SESSIONS_TMUX_SOCKET=str(self.socket),
            TMUX_SESSIONS_SECRET_KEY_FILE=str(secrets / "key"),
            TMUX_SESSIONS_SERVICE_TOKEN_FILE=str(secrets / "token"),
            TMUX_SESSIONS_BOOTSTRAP_PASSWORD_FILE=str(secrets / "password"),
            TMUX_SESSIONS_ALLOWED_ORIGINS=ORIGIN,
            TMUX_SESSIONS_COOKIE_SECURE="false",
            TMUX_SESSIONS_DEFAULT_CWD=str(self.root),
            TMUX_SESSIONS_LOGIN_MAX_FAILURES="3",
        )
        env.update(self.extra_env)
        return env

    def start(self, *, wait_healthy: bool = True) -> None:
        self.port = free_port()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tmux_sessions"],
            env=self.env(),
            stdout=log,
            stderr=log,
            start_new_session=self.own_process_group,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.log_path.read_text()[-2000:]}")
            try:
                status = httpx.get(self.base_url + "/health", timeout=2).status_code
                if status == 200 or not wait_healthy:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"service did not become healthy: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        return subprocess.run(
            ["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, env=env
        )

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=20, **kwargs)

    def token_client(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {TOKEN}"})

    def create_session(self, **body: Any) -> dict[str, Any]:
        body.setdefault("command", "bash --norc --noprofile")
        with self.token_client() as client:
            response = client.post("/api/sessions", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def login_cookie(self, username: str = "admin", password: str = PASSWORD) -> str:
        with self.client() as client:
            response = client.post(
                "/api/auth/login", json={"username": username, "password": password}
            )
        assert response.status_code == 204, response.text
        return response.cookies["aiwf_session"]

    def connect(
        self, session_id: str, *, query: str = "", token: bool = True, **kwargs: Any
    ) -> Any:
        headers = dict(kwargs.pop("additional_headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {TOKEN}"
        url = f"{self.ws_base}/ws/sessions/{session_id}" + (f"?{query}" if query else "")
        return websockets.connect(url, additional_headers=headers, max_size=None, **kwargs)


def new_root() -> Path:
    # Unix socket paths are limited to 107 bytes, so not under pytest's long tmp_path.
    return Path(tempfile.mkdtemp(prefix="tsx-"))


def remove_root(root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    subprocess.run(
        ["tmux", "-S", str(root / "tmux.sock"), "kill-server"], env=env, capture_output=True
    )
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def service_root() -> Iterator[Path]:
    root = new_root()
    yield root
    remove_root(root)


@pytest.fixture
def service(service_root: Path) -> Iterator[Service]:
    """A service of the test's own: fresh users, sessions, rate limits and tmux server."""
    running = Service(service_root)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def own_group_service(service_root: Path) -> Iterator[Service]:
    """A service in a process group of its own, for tests that signal the whole group."""
    running = Service(service_root, own_process_group=True)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def shared_service() -> Iterator[Service]:
    """One service for a whole module, for tests that only touch sessions they create."""
    root = new_root()
    running = Service(root)
    running.start()
    yield running
    running.stop()
    remove_root(root)


@pytest.fixture
def service_factory() -> Iterator[Callable[[Path, dict[str, str]], Service]]:
    """Start services with extra settings (answering HTTP, healthy or not); stopped after."""
    started: list[Service] = []

    def start(root: Path, extra_env: dict[str, str]) -> Service:
        running = Service(root, extra_env)
        started.append(running)
        running.start(wait_healthy=False)
        return running

    yield start
    for running in started:
        running.stop()


class Screen:
    """What a WebSocket client has received: output bytes and JSON text frames."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.output = bytearray()
        self.messages: list[dict[str, Any]] = []

    async def _receive_one(self, timeout: float) -> None:
        message = await asyncio.wait_for(self.connection.recv(), timeout)
        if isinstance(message, bytes):
            self.output += message
        else:
            self.messages.append(json.loads(message))

    async def wait_for_output(self, needle: bytes, timeout: float = 15) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while needle not in self.output:
            await self._receive_one(max(deadline - asyncio.get_running_loop().time(), 0.01))

    async def wait_for_message(self, timeout: float = 15) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.messages:
            await self._receive_one(max(deadline - asyncio.get_running_loop().time(), 0.01))
        return self.messages.pop(0)

    async def type(self, text: str) -> None:
        await self.connection.send(json.dumps({"type": "input", "data": text}))


@pytest.fixture
def screen() -> type[Screen]:
    """The Screen class, for wrapping WebSocket connections in tests."""
    return Screen
