"""Fixtures for the aiwf tests: configs in private folders, a TLS certificate, real upstream
servers standing in for the containers, and a real nginx running the rendered configuration."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from aiwf.config import StackConfig, deep_merge, validate
from aiwf.render import RenderContext, render_all

#: The cookie the tmux-sessions stand-in accepts as a valid login.
VALID_COOKIE = "aiwf_session=valid-session"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait (generously) until something accepts connections on ``port``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., StackConfig]:
    """``make_config({...})``: a validated config whose host paths live under ``tmp_path``."""

    def make(overrides: Mapping[str, Any] | None = None) -> StackConfig:
        base = {
            "project": "aiwf-test",
            "paths": {
                "data_dir": str(tmp_path / "data"),
                "home": str(tmp_path / "home"),
                "tmux_socket_dir": str(tmp_path / "tmux"),
                "certs_dir": str(tmp_path / "certs"),
            },
        }
        return validate(deep_merge(base, overrides or {}))

    return make


@dataclass(frozen=True)
class CertificatePair:
    folder: Path
    chain: Path
    key: Path


@pytest.fixture
def certificate(tmp_path: Path) -> CertificatePair:
    """A self-signed ECDSA certificate for localhost and 127.0.0.1, as nginx reads it."""
    folder = tmp_path / "certs"
    folder.mkdir(exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    chain = folder / "fullchain.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = folder / "privkey.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return CertificatePair(folder, chain, key_path)


@dataclass
class Upstream:
    """A real HTTP + WebSocket server standing in for one container; it records what arrives."""

    name: str
    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _upstream_app(upstream: Upstream) -> Starlette:
    """Answers every path with JSON naming the upstream; ``/api/auth/check`` checks the cookie."""

    async def echo(request: Request) -> Response:
        body = await request.body()
        record = {
            "upstream": upstream.name,
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": {key.lower(): value for key, value in request.headers.items()},
            "body_length": len(body),
        }
        upstream.requests.append(record)
        if request.url.path == "/api/auth/check":
            valid = VALID_COOKIE in request.headers.get("cookie", "")
            return Response(status_code=204 if valid else 401)
        return JSONResponse({key: record[key] for key in ("upstream", "method", "path", "query")})

    async def terminal(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"{upstream.name} attached {websocket.path_params['rest']}")
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text("echo: " + message["text"])
            elif message.get("bytes") is not None:
                await websocket.send_bytes(b"echo: " + message["bytes"])

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    return Starlette(
        routes=[
            WebSocketRoute("/ws/{rest:path}", terminal),
            WebSocketRoute("/api/whisper/{rest:path}", terminal),
            Route("/{path:path}", echo, methods=methods),
        ]
    )


class _QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # runs in a thread: signals stay with pytest
        return


@pytest.fixture
def upstreams() -> Iterator[Callable[[str], Upstream]]:
    """``start("orchestrator")`` starts a stand-in server on a free loopback port."""
    running: list[tuple[_QuietServer, threading.Thread]] = []

    def start(name: str) -> Upstream:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        upstream = Upstream(name, int(sock.getsockname()[1]))
        config = uvicorn.Config(
            _upstream_app(upstream), log_level="warning", ws="websockets-sansio", lifespan="off"
        )
        server = _QuietServer(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread))
        wait_for_port(upstream.port)
        return upstream

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        pytest.skip("nginx is not installed (make deps installs it)")
    return found


@dataclass
class RunningNginx:
    """A real nginx running a rendered configuration on loopback ports."""

    config: StackConfig
    conf_file: Path
    http_port: int
    https_port: int
    acme_webroot: Path
    upstreams: dict[str, Upstream]
    log_dir: Path

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


def host_context(
    config: StackConfig, root: Path, certs: Path, addresses: Mapping[str, str] | None = None
) -> RenderContext:
    """The render context of an nginx on this host: loopback upstreams, folders under ``root``."""
    for folder in ("logs", "temp", "acme"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    return RenderContext.for_stack(config).with_changes(
        resolver="127.0.0.1",
        upstreams=dict(addresses or {}),
        listen_http=f"127.0.0.1:{config.ports.http}",
        listen_https=f"127.0.0.1:{config.ports.https}",
        certs_dir=str(certs),
        acme_webroot=str(root / "acme"),
        log_dir=str(root / "logs"),
        nginx_user="root",
        nginx_temp_dir=str(root / "temp"),
    )


def nginx_argv(conf_file: Path, root: Path, *, test: bool = False) -> list[str]:
    """nginx on ``conf_file`` with its prefix, pid and startup log under ``root``."""
    directives = f"pid {root / 'nginx.pid'};" + ("" if test else " daemon off;")
    return [
        nginx_binary(),
        *(["-t"] if test else []),
        "-p",
        str(root),
        "-e",
        str(root / "logs" / "startup-error.log"),
        "-c",
        str(conf_file),
        "-g",
        directives,
    ]


def nginx_test(conf_file: Path, root: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``conf_file`` with its pid and startup log kept under ``root``."""
    return subprocess.run(
        nginx_argv(conf_file, root, test=True),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def run_nginx(
    tmp_path: Path,
    make_config: Callable[..., StackConfig],
    certificate: CertificatePair,
    upstreams: Callable[[str], Upstream],
) -> Iterator[Callable[..., RunningNginx]]:
    """``run_nginx({...settings})``: render nginx.conf for these settings and run it for real.

    Every upstream is a stand-in server; with speech ``remote`` the URL may name ``{remote}``,
    which is replaced by a stand-in's address.
    """
    processes: list[subprocess.Popen[bytes]] = []

    def start(overrides: Mapping[str, Any] | None = None) -> RunningNginx:
        servers = {
            name: upstreams(name)
            for name in ("tmux-sessions", "orchestrator", "dashboard", "whisper", "remote")
        }
        http_port, https_port = free_port(), free_port()
        settings = deep_merge({"ports": {"http": http_port, "https": https_port}}, overrides or {})
        speech = dict(settings.get("speech", {}))
        if "url" in speech:
            speech["url"] = speech["url"].replace("{remote}", servers["remote"].address)
            settings["speech"] = speech
        config = make_config(settings)
        root = tmp_path / "nginx"
        addresses = {name: server.address for name, server in servers.items()}
        context = host_context(config, root, certificate.folder, addresses)
        conf_file = root / "nginx.conf"
        conf_file.write_text(render_all(config, context)["nginx.conf"])
        checked = nginx_test(conf_file, root)
        assert checked.returncode == 0, checked.stderr
        process = subprocess.Popen(
            nginx_argv(conf_file, root),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        processes.append(process)
        wait_for_port(http_port, process)
        wait_for_port(https_port, process)
        return RunningNginx(
            config, conf_file, http_port, https_port, root / "acme", servers, root / "logs"
        )

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def check_nginx(
    tmp_path: Path, certificate: CertificatePair
) -> Callable[[StackConfig], tuple[subprocess.CompletedProcess[str], str]]:
    """``check_nginx(config)``: render nginx.conf for this host and run ``nginx -t`` on it."""

    def check(config: StackConfig) -> tuple[subprocess.CompletedProcess[str], str]:
        root = tmp_path / f"nginx-t-{len(list(tmp_path.glob('nginx-t-*')))}"
        context = host_context(config, root, certificate.folder)
        text = render_all(config, context)["nginx.conf"]
        conf_file = root / "nginx.conf"
        conf_file.write_text(text)
        return nginx_test(conf_file, root), text

    return check


@pytest.fixture
def aiwf() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``aiwf("check", "--inventory", path)``: the real command in its own process."""
    return run_aiwf


def aiwf_command() -> list[str]:
    """The ``aiwf`` console script of the interpreter running the tests."""
    script = Path(sys.executable).parent / "aiwf"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from aiwf.cli.entry import main; main()"]


def run_aiwf(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``aiwf ARGS`` as a user would, in a separate process."""
    environment = {key: value for key, value in os.environ.items() if key != "AIWF_DEBUG"}
    environment.update(env or {})
    return subprocess.run(
        [*aiwf_command(), *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=120,
    )
