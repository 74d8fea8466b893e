"""A whole stack on the real engine, once per test session, removed afterwards.

Every stack has its own project name (random suffix), data dir, tmux socket dir, certificate
folder and free loopback ports, so it never meets another stack on this engine. Images are built
through the same ``aiwf`` command a user runs; the engine's ``aiwf-cache`` images make a second
run (and a second stack) reuse them instead of building again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The key the test stacks' agents are given; the model double accepts no other.
AGENT_API_KEY = f"sk-ant-api03-e2e-{secrets.token_hex(16)}"


def _load_support(name: str) -> ModuleType:
    """A module of tests/support (pytest imports test files by path, not as packages)."""
    module_name = f"aiwf_e2e_support_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(
        module_name, ROOT / "tests" / "support" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


messages_api = _load_support("messages_api")


class ModelDouble:
    """The Messages API double every test stack's agents talk to, its script set per test.

    It listens on every address of this machine so the sandbox reaches it as
    ``host.docker.internal``; it answers only requests carrying :data:`AGENT_API_KEY`.
    """

    #: The module: its script builders (``complete_ticket_script``), ``ApiError``, ``Turn``...
    api = messages_api
    key = AGENT_API_KEY

    def __init__(self) -> None:
        self.script: Any = messages_api.complete_ticket_script("/nonexistent", "", "")
        self.server = messages_api.MessagesApiServer(
            lambda request: self.script(request), host="0.0.0.0", expected_api_key=AGENT_API_KEY
        )

    @property
    def base_url(self) -> str:
        """The URL agents in the sandbox use."""
        return f"http://host.docker.internal:{self.server.port}"


@pytest.fixture(scope="session")
def model_double() -> Iterator[ModelDouble]:
    double = ModelDouble()
    with double.server:
        yield double


def agent_settings(tmp: Path, model: ModelDouble) -> dict[str, Any]:
    """Settings giving a stack's agents the test key and the model double."""
    key = tmp / "agent-api-key"
    key.write_text(AGENT_API_KEY + "\n")
    key.chmod(0o600)
    return {
        "agent": {
            "api_key_file": str(key),
            "base_url": model.base_url,
            # An API error ends the agent's turn at once instead of after minutes of retries.
            "environment": {"CLAUDE_CODE_MAX_RETRIES": "0"},
        }
    }


def _engine_answers() -> bool:
    try:
        from aiwf.engine.docker_client import connect

        connect(timeout=5).ping()
    except Exception:
        return False
    return True


#: How long an e2e test waits for something the stack does (an agent's turn, a sync).
DEADLINE_S = 180.0


def wait_until(what: str, probe: Callable[[], Any], timeout: float = DEADLINE_S) -> Any:
    """Poll ``probe`` until it returns something truthy (returned); fail naming ``what`` and
    the last value seen at the deadline. Never a fixed sleep: it returns as soon as it can."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


@pytest.fixture(scope="session")
def wait_for() -> Callable[..., Any]:
    """:func:`wait_until`, for test modules (which pytest does not import as a package)."""
    return wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def insecure_tls() -> ssl.SSLContext:
    """The stack's certificate is self-signed: tests check the routes, not the chain."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class Stack:
    """One test stack: its settings (written as a pyinfra inventory) and how to drive it."""

    root: Path
    project: str
    settings: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.py"

    @property
    def data_dir(self) -> Path:
        return Path(self.settings["paths"]["data_dir"])

    @property
    def https_port(self) -> int:
        return int(self.settings["ports"]["https"])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.https_port}"

    def write_inventory(self, overrides: Mapping[str, Any] | None = None) -> None:
        settings = _deep_merge(self.settings, overrides or {})
        self.inventory.write_text(f"hosts = [('@local', {{'aiwf': {settings!r}}})]\n")

    def aiwf(
        self,
        *args: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: int = 900,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real ``aiwf`` command against this stack's inventory."""
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from aiwf.cli.entry import main; main()",
                "-i",
                str(self.inventory),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "200", **self.env, **(env or {})},
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"aiwf {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def ps(self) -> dict[str, dict[str, Any]]:
        rows = json.loads(self.aiwf("ps", "--json").stdout)
        return {row["service"]: row for row in rows}

    def tls(self) -> ssl.SSLContext:
        return insecure_tls()

    def client(self) -> httpx.Client:
        """An HTTPS client for this stack's nginx (no cookie yet)."""
        return httpx.Client(base_url=self.base_url, verify=insecure_tls(), timeout=30)

    def login(self, client: httpx.Client) -> None:
        response = client.post(
            "/api/auth/login",
            json={"username": "admin", "password": self.password()},
            headers={"Origin": self.origin},
        )
        assert response.status_code == 204, response.text

    def container_ids(self) -> dict[str, str]:
        return {service: row["id"] for service, row in self.ps().items()}

    def new_ticket(self, title: str, prefix: str = "AGENT") -> str:
        """A new ticket file in the stack's local ticket folder (label ``claude``); its id."""
        ticket_id = f"{prefix}-{secrets.token_hex(3).upper()}"
        body = (
            f"---\nid: {ticket_id}\ntitle: {title}\nlabels: [claude]\npriority: high\n---\n"
            f"{title}.\n\nRun /complete with a short summary when done.\n"
        )
        (self.data_dir / "tickets" / f"{ticket_id}.md").write_text(body)
        return ticket_id

    def password(self) -> str:
        return (self.data_dir / "secrets" / "admin_password").read_text().strip()


def make_stack(tmp: Path, overrides: Mapping[str, Any] | None = None) -> Stack:
    project = f"aiwfe2e{secrets.token_hex(3)}"
    settings = {
        "project": project,
        "ports": {"bind": "127.0.0.1", "http": free_port(), "https": free_port()},
        "paths": {
            "data_dir": str(tmp / "data"),
            "tmux_socket_dir": str(tmp / "tmux"),
            "home": str(tmp / "home"),
            "certs_dir": str(tmp / "certs"),
        },
        "services": {"orchestrator": {"poll_interval_seconds": 5}},
    }
    stack = Stack(tmp, project, _deep_merge(settings, overrides or {}))
    stack.write_inventory()
    return stack


def remove_stack(stack: Stack) -> None:
    """Containers (the sandbox's tmux server with them), network, volumes, image tags."""
    stack.write_inventory()
    stack.aiwf("down", "--volumes", "--yes", check=False)
    from aiwf.engine.docker_client import connect

    client = connect()
    for image in client.api.images(name=f"{stack.project}-*"):
        for tag in image.get("RepoTags") or ():
            if tag.startswith(f"{stack.project}-"):
                client.api.remove_image(tag, noprune=True)
    shutil.rmtree(stack.root, ignore_errors=True)


@pytest.fixture(scope="session")
def engine_available() -> None:
    if not _engine_answers():
        pytest.skip("no Docker engine answers; start dockerd (make engine)")


def run_stack(tmp: Path, overrides: Mapping[str, Any] | None = None) -> Iterator[Stack]:
    """Bring a new stack up from nothing with ``aiwf up``; remove it when the caller is done."""
    created = make_stack(tmp, overrides)
    try:
        result = created.aiwf("up", timeout=1800)
        password_file = created.data_dir / "secrets" / "admin_password"
        assert f"first login: user admin, its password is in {password_file}" in result.stdout
        assert password_file.read_text().strip() not in result.stdout + result.stderr
        yield created
    finally:
        remove_stack(created)


@pytest.fixture(scope="session")
def stack_factory() -> Any:
    """:func:`run_stack`, for modules that need a stack with other settings."""
    return run_stack


@pytest.fixture(scope="session")
def agent_overrides(model_double: ModelDouble) -> Callable[[Path], dict[str, Any]]:
    """``tmp -> settings`` giving a stack's agents the test key and the model double."""
    return lambda tmp: agent_settings(tmp, model_double)


@pytest.fixture(scope="session")
def stack(
    engine_available: None, model_double: ModelDouble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The default stack (local tickets, speech off), brought up from nothing by ``aiwf up``;
    its agents have a key and talk to the model double."""
    tmp = tmp_path_factory.mktemp("stack")
    yield from run_stack(tmp, agent_settings(tmp, model_double))


@dataclass(frozen=True)
class AcmeServer:
    """A running pebble: its ACME directory URL, the port it validates HTTP-01 on, its log."""

    directory: str
    http_port: int
    log: Path


@contextmanager
def run_pebble(work: Path, http_port: int) -> Iterator[AcmeServer]:
    """Debian's pebble (an ACME test CA) and pebble-challtestsrv as its DNS server.

    The DNS server answers every name with 127.0.0.1, so pebble validates HTTP-01 challenges
    for any domain on ``127.0.0.1:<http_port>``: the port a stack's nginx publishes. Every
    order is validated afresh (no authorization reuse), so a renewal meets nginx again.
    """
    from aiwf.certs import create_self_signed

    work.mkdir(parents=True, exist_ok=True)
    create_self_signed(work, ["localhost", "127.0.0.1"])
    dns_port, acme_port = free_port(), free_port()
    dns = subprocess.Popen(
        [
            "pebble-challtestsrv",
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            f"127.0.0.1:{dns_port}",
            "-http01",
            f"127.0.0.1:{free_port()}",
            "-tlsalpn01",
            f"127.0.0.1:{free_port()}",
            "-https01",
            f"127.0.0.1:{free_port()}",
            "-management",
            f"127.0.0.1:{free_port()}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    settings = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{acme_port}",
            "managementListenAddress": f"127.0.0.1:{free_port()}",
            "certificate": str(work / "fullchain.pem"),
            "privateKey": str(work / "privkey.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (work / "pebble.json").write_text(json.dumps(settings))
    log_path = work / "pebble.log"
    with log_path.open("wb") as log:
        pebble = subprocess.Popen(
            ["pebble", "-config", str(work / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns_port}"],
            env={
                "PATH": "/usr/bin:/bin",
                "PEBBLE_VA_NOSLEEP": "1",
                "PEBBLE_WFE_NONCEREJECT": "0",
                "PEBBLE_AUTHZREUSE": "0",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = AcmeServer(f"https://127.0.0.1:{acme_port}/dir", http_port, log_path)
        try:
            _wait_for_directory(server)
            yield server
        finally:
            for process in (pebble, dns):
                process.terminate()
                process.wait(timeout=10)


def _wait_for_directory(server: AcmeServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(server.directory, verify=insecure_tls(), timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"pebble did not answer at {server.directory}; see {server.log}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def acme_server_factory() -> Any:
    """:func:`run_pebble`, skipping when Debian's pebble is not installed."""
    if shutil.which("pebble") is None or shutil.which("pebble-challtestsrv") is None:
        pytest.skip("pebble is not installed (apt-get install -y pebble)")
    return run_pebble
