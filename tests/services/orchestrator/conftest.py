"""Fixtures: a Plane double and a tmux-sessions double on loopback, settings, the daemon."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from orchestrator.core.config import Settings
from orchestrator.metrics import Metrics
from orchestrator.service import Orchestrator

HERE = Path(__file__).parent
REPO = HERE.parents[2]


def _load(name: str) -> ModuleType:
    module_name = f"aiwf_orchestrator_tests_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


plane_double = _load("plane_double")
tmux_double = _load("tmux_double")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerThread:
    """Serve an ASGI app with uvicorn on a loopback port in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class PlaneEnv:
    double: Any
    url: str
    api_key: str


@pytest.fixture
def plane() -> Iterator[PlaneEnv]:
    api_key = "plane_api_" + secrets.token_hex(8)
    double = plane_double.PlaneDouble(api_key)
    with ServerThread(double.app) as server:
        yield PlaneEnv(double, server.url, api_key)


@dataclass
class TmuxEnv:
    double: Any
    url: str
    token_file: Path


def _real_tmux_sessions(socket: Path, token_file: Path, data_dir: Path) -> Iterator[str]:
    """Run the real ``python -m tmux_sessions`` on a free port; yields its URL."""
    secret_key = data_dir / "secret-key"
    secret_key.write_text(secrets.token_hex(32))
    port = free_port()
    env = {
        **os.environ,
        "TMUX_SESSIONS_PORT": str(port),
        "TMUX_SESSIONS_HOST": "127.0.0.1",
        "TMUX_SESSIONS_DATA_DIR": str(data_dir),
        "TMUX_SESSIONS_TMUX_SOCKET": str(socket),
        "TMUX_SESSIONS_SECRET_KEY_FILE": str(secret_key),
        "TMUX_SESSIONS_SERVICE_TOKEN_FILE": str(token_file),
        "TMUX_SESSIONS_COOKIE_SECURE": "false",
        "TMUX_SESSIONS_LOG_LEVEL": "warning",
    }
    log = open(data_dir / "tmux-sessions.out", "ab")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(
        [sys.executable, "-m", "tmux_sessions"], env=env, stdout=log, stderr=log
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError((data_dir / "tmux-sessions.out").read_text()[-2000:])
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextlib.contextmanager
def _tmux_env(kind: str, tmp_path: Path) -> Iterator[TmuxEnv]:
    """A tmux-sessions API (``double`` or ``real``) on a private tmux socket."""
    token = secrets.token_hex(16)
    token_file = tmp_path / "tmux-token"
    token_file.write_text(token + "\n")
    socket_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"orch-tmux-{secrets.token_hex(4)}"
    socket_dir.mkdir()
    double = tmux_double.TmuxDouble(socket_dir / "sock", token)
    try:
        if kind == "double":
            with ServerThread(double.app) as server:
                yield TmuxEnv(double, server.url, token_file)
        else:
            service_data = tmp_path / "tmux-sessions-data"
            service_data.mkdir()
            for url in _real_tmux_sessions(socket_dir / "sock", token_file, service_data):
                yield TmuxEnv(double, url, token_file)
    finally:
        double.kill_server()
        for leftover in socket_dir.iterdir():
            leftover.unlink()
        socket_dir.rmdir()


@pytest.fixture(params=["double", "real"])
def tmux_service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TmuxEnv]:
    """A tmux-sessions API on a private tmux socket: the test double, then the real service."""
    if request.param == "real" and importlib.util.find_spec("tmux_sessions") is None:
        pytest.skip("services/tmux-sessions is not installed: pip install -e it")
    with _tmux_env(request.param, tmp_path) as env:
        yield env


@pytest.fixture
def real_tmux_service(tmp_path: Path) -> Iterator[TmuxEnv]:
    """The real ``python -m tmux_sessions``, for tests whose session commands must really run
    and report how they ended (the sandbox jobs)."""
    with _tmux_env("real", tmp_path) as env:
        yield env


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings rooted in ``tmp_path``; keyword arguments override fields."""

    def build(**overrides: Any) -> Settings:
        for folder in ("data", "logs", "completions", "tickets", "workspace"):
            (tmp_path / folder).mkdir(exist_ok=True)
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "log_dir": tmp_path / "logs",
            "completion_dir": tmp_path / "completions",
            "tickets_dir": tmp_path / "tickets",
            "workspace": str(tmp_path / "workspace"),
            "claude_json": tmp_path / "missing-claude.json",
            "tmux_url": "http://127.0.0.1:9",
            "poll_interval": 3600,
            "session_check_interval": 3600,
            "rescan_interval": 3600,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
async def make_orchestrator() -> AsyncIterator[Callable[..., Any]]:
    """Build an opened orchestrator (no background loops) from settings; closed afterwards."""
    from orchestrator.api.main import build_orchestrator

    built: list[Orchestrator] = []

    async def build(settings: Settings) -> Orchestrator:
        orchestrator = build_orchestrator(settings, Metrics(), [])
        await orchestrator.open()
        built.append(orchestrator)
        return orchestrator

    yield build
    for orchestrator in built:
        await orchestrator.stop()


def write_ticket(folder: Path, ticket_id: str, title: str, labels: str = "claude") -> Path:
    path = folder / f"{ticket_id}.md"
    path.write_text(
        f"---\nid: {ticket_id}\ntitle: {title}\nlabels: [{labels}]\npriority: high\n---\n"
        f"Description of {title}.\n"
    )
    return path


@pytest.fixture
def ticket_writer() -> Callable[..., Path]:
    return write_ticket


class Daemon:
    """``python -m orchestrator`` as a real process on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            **env,
            "ORCHESTRATOR_PORT": str(self.port),
            "ORCHESTRATOR_HOST": "127.0.0.1",
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator"], env=self.env, stdout=log, stderr=log
        )
        log.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("daemon did not answer /health")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Daemon]]:
    started: list[Daemon] = []

    def build(env: dict[str, str]) -> Daemon:
        daemon = Daemon(env, tmp_path / f"daemon-{len(started)}.out")
        started.append(daemon)
        return daemon

    yield build
    for daemon in started:
        daemon.kill()


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, step: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy (generous timeout, no speed claim)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def waiter() -> Callable[..., Any]:
    return wait_for


@pytest.fixture
def app_server() -> Iterator[Callable[[Settings], str]]:
    """Serve ``create_app(settings)`` (lifespan included) on loopback; returns its base URL."""
    from orchestrator.api.main import create_app

    servers: list[ServerThread] = []

    def serve(settings: Settings) -> str:
        server = ServerThread(create_app(settings)).__enter__()
        servers.append(server)
        return server.url

    yield serve
    for server in servers:
        server.__exit__(None, None, None)
