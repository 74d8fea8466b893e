"""Dashboard test fixtures: the real services on loopback ports, always ended afterwards."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "services" / "dashboard"
OUTPUT = REPO / "test-output" / "dashboard"
APPROVE_ID = "E2E-APPROVE"
REJECT_ID = "E2E-REJECT"
RETRY_ID = "E2E-RETRY"
USERNAME = "admin"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_http(
    url: str, *, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until ``url`` answers (any status); fail naming the URL, or the early exit."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{url}: the server exited with {process.returncode} before answering"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError as error:
            last = str(error)
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s ({last})")


def wait_for_model(url: str, *, timeout: float = 300.0) -> None:
    """Wait until the whisper service reports its model loaded (``status: healthy``)."""
    deadline = time.monotonic() + timeout
    status = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                status = json.load(response).get("status", "?")
        except (OSError, ValueError) as error:
            status = str(error)
        if status == "healthy":
            return
        time.sleep(0.5)
    raise RuntimeError(f"{url} still says {status!r} after {timeout:.0f} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """End a process this test started (its own process group), politely and then firmly."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def start_process(
    command: list[str], *, env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own process group, output appended to ``log``."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            command, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )


def require_node_modules() -> None:
    """The dashboard's npm dependencies must be installed (``npm ci``) for these tests."""
    if not (DASHBOARD / "node_modules" / ".bin" / "vite").exists():
        pytest.fail(
            "services/dashboard/node_modules is missing: run `npm ci` in services/dashboard first"
        )


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        pytest.fail("nginx is not installed: apt-get install -y nginx")
    return found


def _missing_packages() -> list[str]:
    return [
        name for name in ("tmux_sessions", "orchestrator") if importlib.util.find_spec(name) is None
    ]


@dataclass
class Stack:
    """The processes of one end-to-end run and how to (re)start them."""

    tmp: Path
    password: str
    token: str
    username: str = USERNAME
    #: The local ticket files, by the part each plays in the browser run.
    tickets: dict[str, str] = field(
        default_factory=lambda: {"approve": APPROVE_ID, "reject": REJECT_ID, "retry": RETRY_ID}
    )
    base_url: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    starters: dict[str, Callable[[], subprocess.Popen[bytes]]] = field(default_factory=dict)
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        process = self.starters[name]()
        self.running[name] = process
        wait_for_http(f"http://127.0.0.1:{self.ports[name]}/health", process=process)

    def stop(self, name: str) -> None:
        stop_process(self.running[name])

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def stop_all(self) -> None:
        for process in self.running.values():
            stop_process(process)

    def tmux_get(self, path: str) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports['tmux']}{path}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


def _write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _write_tickets(folder: Path) -> None:
    folder.mkdir()
    (folder / f"{APPROVE_ID}.md").write_text(
        "---\n"
        f"id: {APPROVE_ID}\n"
        "title: Echo the agent command <b>now</b>\n"
        "labels: [claude, e2e]\n"
        "priority: high\n"
        "---\n"
        "Run the agent.\n"
        'Markup stays text: <img src=x onerror="window.__xss=1">\n',
        encoding="utf-8",
    )
    (folder / f"{REJECT_ID}.md").write_text(
        f"---\nid: {REJECT_ID}\ntitle: A ticket to turn down\n"
        "labels: [claude]\npriority: low\n---\nNot wanted.\n",
        encoding="utf-8",
    )
    (folder / f"{RETRY_ID}.md").write_text(
        f"---\nid: {RETRY_ID}\ntitle: Survive a lost session\n"
        "labels: [claude]\npriority: medium\n---\nIts session is killed, then it is retried.\n",
        encoding="utf-8",
    )


def _service_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TMUX_SESSIONS_", "ORCHESTRATOR_", "PLANE_", "TMUX"))
    }
    env.update(extra)
    return env


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """tmux-sessions, the orchestrator and nginx (serving a fresh build) on loopback ports."""
    with running_stack(tmp_path, whisper=False) as state:
        yield state


@pytest.fixture
def voice_stack(tmp_path: Path) -> Iterator[Stack]:
    """The same stack plus the whisper service, with voice input built in."""
    if importlib.util.find_spec("whisper_service") is None:
        pytest.skip("whisper_service not importable (pip install -e services/whisper)")
    with running_stack(tmp_path, whisper=True) as state:
        yield state


@contextlib.contextmanager
def running_stack(tmp_path: Path, *, whisper: bool) -> Iterator[Stack]:
    missing = _missing_packages()
    if missing:
        pytest.skip(
            f"service packages not importable: {', '.join(missing)} "
            "(pip install -e services/tmux-sessions -e services/orchestrator)"
        )
    password = secrets.token_urlsafe(12)
    token = secrets.token_urlsafe(24)
    state = Stack(tmp=tmp_path, password=password, token=token)
    names = ("tmux", "orchestrator", "whisper", "nginx", "vite")
    state.ports = {name: free_port() for name in names}
    nginx_port = state.ports["nginx"]
    state.base_url = f"http://127.0.0.1:{nginx_port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (tmp_path / "completions").mkdir()
    _write_tickets(tmp_path / "tickets")

    tmux_env = _service_env(
        {
            "TMUX_SESSIONS_HOST": "127.0.0.1",
            "TMUX_SESSIONS_PORT": str(state.ports["tmux"]),
            "TMUX_SESSIONS_DATA_DIR": str(tmp_path / "tmux-data"),
            "TMUX_SESSIONS_TMUX_SOCKET": str(tmp_path / "tmux.sock"),
            "TMUX_SESSIONS_SECRET_KEY_FILE": str(
                _write_secret(tmp_path / "secret_key", secrets.token_urlsafe(32))
            ),
            "TMUX_SESSIONS_SERVICE_TOKEN_FILE": str(_write_secret(tmp_path / "token", token)),
            "TMUX_SESSIONS_BOOTSTRAP_USER": USERNAME,
            "TMUX_SESSIONS_BOOTSTRAP_PASSWORD_FILE": str(
                _write_secret(tmp_path / "password", password)
            ),
            # The nginx origin, and the Vite dev server's for the dev-proxy test.
            "TMUX_SESSIONS_ALLOWED_ORIGINS": (
                f"{state.base_url},http://127.0.0.1:{state.ports['vite']}"
            ),
            "TMUX_SESSIONS_DEFAULT_CWD": str(workspace),
        }
    )
    orchestrator_env = _service_env(
        {
            "ORCHESTRATOR_HOST": "127.0.0.1",
            "ORCHESTRATOR_PORT": str(state.ports["orchestrator"]),
            "ORCHESTRATOR_DATA_DIR": str(tmp_path / "orchestrator-data"),
            "ORCHESTRATOR_LOG_DIR": str(logs),
            "ORCHESTRATOR_TMUX_URL": f"http://127.0.0.1:{state.ports['tmux']}",
            "ORCHESTRATOR_TMUX_TOKEN_FILE": str(tmp_path / "token"),
            "ORCHESTRATOR_CLAUDE_JSON": str(tmp_path / "no-claude.json"),
            "ORCHESTRATOR_TICKETS_DIR": str(tmp_path / "tickets"),
            "ORCHESTRATOR_COMPLETION_DIR": str(tmp_path / "completions"),
            "ORCHESTRATOR_WORKSPACE": str(workspace),
            # Stands in for Claude Code: prints a line, then leaves a shell to type into.
            "ORCHESTRATOR_AGENT_COMMAND": (
                "printf 'agent working on %s\\n' {ticket_id}; exec bash --norc --noprofile"
            ),
            "ORCHESTRATOR_POLL_INTERVAL": "1",
            "ORCHESTRATOR_RESCAN_INTERVAL": "1",
            "ORCHESTRATOR_SESSION_CHECK_INTERVAL": "1",
        }
    )
    state.starters["tmux"] = lambda: start_process(
        [sys.executable, "-m", "tmux_sessions"], env=tmux_env, log=logs / "tmux-sessions.log"
    )
    state.starters["orchestrator"] = lambda: start_process(
        [sys.executable, "-m", "orchestrator"], env=orchestrator_env, log=logs / "orchestrator.log"
    )
    if whisper:
        whisper_env = _service_env(
            {
                "WHISPER_HOST": "127.0.0.1",
                "WHISPER_PORT": str(state.ports["whisper"]),
                "WHISPER_ALLOWED_ORIGINS": state.base_url,
            }
        )
        state.starters["whisper"] = lambda: start_process(
            [sys.executable, "-m", "whisper_service"], env=whisper_env, log=logs / "whisper.log"
        )
    nginx_process: subprocess.Popen[bytes] | None = None
    try:
        for name in state.starters:
            state.start(name)
        if whisper:
            wait_for_model(f"http://127.0.0.1:{state.ports['whisper']}/health")
        dist = _build_dashboard(tmp_path / "dist", logs, whisper=whisper)
        nginx_process = _start_nginx(tmp_path, dist, state, whisper=whisper)
        wait_for_http(f"{state.base_url}/", process=nginx_process)
        yield state
    finally:
        if nginx_process is not None:
            stop_process(nginx_process)
        state.stop_all()
        subprocess.run(
            ["tmux", "-S", str(tmp_path / "tmux.sock"), "kill-server"],
            capture_output=True,
            check=False,
        )
        _keep_logs(logs)


def _build_dashboard(out_dir: Path, logs: Path, *, whisper: bool) -> Path:
    """Build the current sources; without whisper, as a stack without speech-to-text is built."""
    require_node_modules()
    env = {**os.environ, "VITE_WHISPER": "auto" if whisper else "off"}
    result = subprocess.run(
        [
            str(DASHBOARD / "node_modules" / ".bin" / "vite"),
            "build",
            "--outDir",
            str(out_dir),
            "--emptyOutDir",
        ],
        cwd=DASHBOARD,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    (logs / "vite-build.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    assert result.returncode == 0, f"vite build failed:\n{result.stdout}\n{result.stderr}"
    return out_dir


WHISPER_LOCATION = """
        location /api/whisper/ {
            auth_request /_auth;
            error_page 401 = @unauthenticated;
            client_max_body_size 25m;
            proxy_pass http://127.0.0.1:@WHISPER_PORT@;
        }
"""


def _start_nginx(tmp: Path, dist: Path, state: Stack, *, whisper: bool) -> subprocess.Popen[bytes]:
    template = (Path(__file__).parent / "nginx-e2e.conf.template").read_text(encoding="utf-8")
    # Workers run as root only when the master does; the private temp dirs are 0700.
    user = "user root;" if os.geteuid() == 0 else ""
    config = (
        template.replace("@TMP@", str(tmp))
        .replace("@USER@", user)
        .replace("@WHISPER@", WHISPER_LOCATION if whisper else "")
        .replace("@WHISPER_PORT@", str(state.ports["whisper"]))
        .replace("@PORT@", str(state.ports["nginx"]))
        .replace("@DIST@", str(dist))
        .replace("@TMUX_PORT@", str(state.ports["tmux"]))
        .replace("@ORCHESTRATOR_PORT@", str(state.ports["orchestrator"]))
    )
    path = tmp / "nginx.conf"
    path.write_text(config, encoding="utf-8")
    return start_process(
        [nginx_binary(), "-p", str(tmp), "-c", str(path)],
        env=dict(os.environ),
        log=tmp / "logs" / "nginx.log",
    )


def _keep_logs(logs: Path) -> None:
    target = OUTPUT / "logs"
    target.mkdir(parents=True, exist_ok=True)
    for log in logs.glob("*.log"):
        shutil.copy(log, target / log.name)
