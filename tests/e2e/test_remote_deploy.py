"""The remote deploy end to end: ``aiwf deploy`` over real SSH (a private sshd) onto this machine.

The test's own sshd, key, data dir, ports, tmux socket dir and project name keep the deployed
stack apart from anything else on the machine; the engine is this machine's Docker engine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.engine]

ROOT = Path(__file__).resolve().parents[2]
AIWF = [str(Path(sys.executable).with_name("aiwf"))]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Target:
    """One SSH-reachable host (this machine) and the inventory that deploys onto it."""

    tmp: Path
    root: Path
    ssh_port: int
    key: Path
    project: str
    http: int
    https: int
    inventory: Path

    def write_inventory(self, **overrides: Any) -> None:
        settings: dict[str, Any] = {
            "project": self.project,
            "domains": ["localhost"],
            "ports": {"bind": "127.0.0.1", "http": self.http, "https": self.https},
            "paths": {
                "data_dir": str(self.tmp / "data"),
                "home": str(self.tmp / "home"),
                "tmux_socket_dir": str(self.tmp / "tmux"),
            },
        }
        settings.update(overrides)
        host_data = {
            "ssh_port": self.ssh_port,
            "ssh_user": "root",
            "ssh_key": str(self.key),
            "ssh_known_hosts_file": str(self.tmp / "known_hosts"),
            "ssh_strict_host_key_checking": "no",
            "aiwf": settings,
        }
        self.inventory.write_text(f"hosts = [('127.0.0.1', {host_data!r})]\n")


def _snapshot(destination: Path) -> Path:
    """A copy of what the deploy ships, so edits in the working tree during the test change nothing.

    The dashboard's ``node_modules`` is linked, not copied (only needed if ``dist/`` is stale).
    """
    skip = shutil.ignore_patterns(
        "node_modules", "__pycache__", "*.egg-info", ".pytest_cache", "wheels", ".mypy_cache"
    )
    for folder in ("aiwf", "templates", "services"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=skip)
    for name in ("pyproject.toml", "deploy.py"):
        shutil.copy2(ROOT / name, destination / name)
    modules = ROOT / "services" / "dashboard" / "node_modules"
    if modules.is_dir():
        (destination / "services" / "dashboard" / "node_modules").symlink_to(modules)
    return destination


def _wait_port(port: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
    ):
        pytest.skip("no Docker engine answers")
    tmp = tmp_path_factory.mktemp("remote")
    key, host_key = tmp / "id_ed25519", tmp / "host_ed25519"
    for path in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    (tmp / "authorized_keys").write_text((tmp / "id_ed25519.pub").read_text())
    (tmp / "authorized_keys").chmod(0o600)
    port = _free_port()
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {tmp / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nSubsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    log = (tmp / "sshd.log").open("wb")
    sshd = subprocess.Popen(
        ["/usr/sbin/sshd", "-f", str(config), "-D", "-e"], stdout=subprocess.DEVNULL, stderr=log
    )
    project = f"aiwfdeploy{secrets.token_hex(3)}"
    found = Target(
        tmp,
        _snapshot(tmp / "project"),
        port,
        key,
        project,
        _free_port(),
        _free_port(),
        tmp / "inventory" / "hosts.py",
    )
    found.inventory.parent.mkdir()
    (tmp / "home").mkdir()  # the deploying user's home exists on any real host
    found.write_inventory()
    try:
        _wait_port(port)
        yield found
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)
        log.close()
        _remove_stack(found)


def _remove_stack(target: Target) -> None:
    data = target.tmp / "data"
    command = data / "aiwf" / "bin" / "aiwf"
    if command.exists():
        subprocess.run(
            [str(command), "down", "--volumes", "--yes"], capture_output=True, check=False
        )
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=aiwf.project={target.project}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if listed:
        subprocess.run(["docker", "rm", "-f", *listed], capture_output=True, check=False)
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", f"name={target.project}_"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if volumes:
        subprocess.run(["docker", "volume", "rm", *volumes], capture_output=True, check=False)
    subprocess.run(
        ["docker", "network", "rm", f"{target.project}-network"], capture_output=True, check=False
    )
    tags = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", f"{target.project}-*"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if tags:  # the tags only: the cached images under them stay for the next run
        subprocess.run(["docker", "image", "rm", "--no-prune", *tags], capture_output=True)
    # the host tmux server ``aiwf up`` starts so that sessions outlive the container
    socket_path = target.tmp / "tmux" / "default"
    if socket_path.exists():
        subprocess.run(["tmux", "-S", str(socket_path), "kill-server"], check=False)
    for path in (
        Path(f"/etc/logrotate.d/aiwf-{target.project}"),
        Path(f"/etc/systemd/system/aiwf-backup-{target.project}.service"),
        Path(f"/etc/systemd/system/aiwf-backup-{target.project}.timer"),
    ):
        path.unlink(missing_ok=True)


@dataclass
class Run:
    """One ``aiwf deploy``: exit status, pyinfra's output, and what each operation did."""

    status: int
    stdout: str
    stderr: str

    def results(self) -> dict[str, str]:
        """Operation name -> ``changed``/``unchanged``/``error``, from pyinfra's log lines."""
        outcome: dict[str, str] = {}
        current = None
        for line in self.stderr.splitlines():
            text = line.strip()
            if text.startswith("--> Starting operation: "):
                current = text.removeprefix("--> Starting operation: ").strip()
            elif current and text.startswith("[127.0.0.1] "):
                word = text.removeprefix("[127.0.0.1] ")
                if word.startswith("Success"):
                    outcome[current] = "changed"
                elif word.startswith("No changes"):
                    outcome[current] = "unchanged"
                elif word.startswith("Error"):
                    outcome[current] = "error"
        return outcome

    def changed(self) -> list[str]:
        return [name for name, state in self.results().items() if state == "changed"]

    def plan(self) -> list[dict[str, Any]]:
        lines = [line for line in self.stdout.splitlines() if line.startswith("{")]
        report: dict[str, Any] = json.loads(lines[-1])
        return list(report["plan"])

    def assert_deployed(self) -> None:
        assert self.status == 0, self.stderr[-5000:]


def deploy(target: Target, *extra: str) -> Run:
    """Run ``aiwf deploy --json`` from the snapshot of the tree."""
    result = subprocess.run(
        [*AIWF, "deploy", "--inventory", str(target.inventory), "--json", *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "AIWF_ROOT": str(target.root)},
        check=False,
        timeout=1800,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def https_health(target: Target) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"https://127.0.0.1:{target.https}/health"
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        return str(response.read().decode().strip())


def container_ids(target: Target) -> dict[str, str]:
    listed = subprocess.run(
        [
            "docker",
            "ps",
            "--filter",
            f"label=aiwf.project={target.project}",
            "--format",
            "{{.Names}} {{.ID}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return dict(line.split() for line in listed if line.strip())


def test_first_deploy_brings_the_stack_up_healthy(target: Target) -> None:
    run = deploy(target)
    run.assert_deployed()
    assert "error" not in [state for name, state in run.results().items() if "healthy" not in name]
    assert any("Stack converged" in name for name in run.changed())
    data = target.tmp / "data"
    settings = data / "aiwf" / "inventory" / "host.py"
    assert target.project in settings.read_text()
    assert oct(settings.stat().st_mode & 0o777) == "0o600"
    assert oct((data / "certs" / "privkey.pem").stat().st_mode & 0o777) == "0o600"
    assert (data / "rendered" / "nginx.conf").is_file()
    assert Path(f"/etc/logrotate.d/aiwf-{target.project}").is_file()
    assert Path(f"/etc/systemd/system/aiwf-backup-{target.project}.timer").is_file()
    assert not (data / "aiwf" / "deploy.lock").exists()  # released after the last operation
    names = set(container_ids(target))
    assert {f"{target.project}-nginx", f"{target.project}-tmux-sessions"} <= names
    assert https_health(target) == "healthy"


def test_second_deploy_changes_nothing(target: Target) -> None:
    before = container_ids(target)
    run = deploy(target)
    run.assert_deployed()
    assert len(run.results()) > 20
    assert run.changed() == []
    assert container_ids(target) == before


def test_dry_run_changes_nothing_and_shows_the_change(target: Target) -> None:
    settings_file = target.tmp / "data" / "aiwf" / "inventory" / "host.py"
    logrotate = Path(f"/etc/logrotate.d/aiwf-{target.project}")
    before = settings_file.read_bytes(), logrotate.read_bytes()
    target.write_inventory(logrotate={"rotate": 9})
    try:
        run = deploy(target, "--dry")
    finally:
        target.write_inventory()
    assert run.status == 0, run.stderr[-4000:]
    planned = [op["name"] for op in run.plan() if op["hosts_with_change"]]
    assert any("logrotate" in name for name in planned), planned
    assert not any("Docker" in name or "sources" in name for name in planned), planned
    assert (settings_file.read_bytes(), logrotate.read_bytes()) == before


def test_changed_setting_changes_only_what_depends_on_it(target: Target) -> None:
    before = container_ids(target)
    target.write_inventory(logrotate={"rotate": 9})
    try:
        run = deploy(target)
    finally:
        target.write_inventory()
    run.assert_deployed()
    changed = run.changed()
    assert any("logrotate" in name for name in changed), changed
    assert all("logrotate" in name or "Host settings" in name for name in changed), changed
    assert "rotate 9" in Path(f"/etc/logrotate.d/aiwf-{target.project}").read_text()
    assert container_ids(target) == before


def test_port_taken_by_something_else_stops_before_any_change(target: Target) -> None:
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    settings_file = target.tmp / "data" / "aiwf" / "inventory" / "host.py"
    before = settings_file.read_bytes()
    target.write_inventory(ports={"bind": "127.0.0.1", "http": target.http, "https": port})
    try:
        run = deploy(target)
    finally:
        target.write_inventory()
        busy.close()
    assert run.status != 0
    assert f"port {port} is taken by " in run.stderr
    assert f"(pid {os.getpid()}), not this stack's nginx" in run.stderr
    assert run.results() == {}  # not one operation ran
    assert settings_file.read_bytes() == before


def test_unreachable_host_fails_with_one_line(target: Target, tmp_path: Path) -> None:
    inventory = tmp_path / "down.py"
    data = {"ssh_port": _free_port(), "ssh_user": "root", "ssh_key": str(target.key)}
    inventory.write_text(f"hosts = [('127.0.0.1', {data!r})]\n")
    result = subprocess.run(
        [*AIWF, "deploy", "--inventory", str(inventory)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    assert result.returncode != 0
    assert "Could not connect" in result.stderr or "could not connect" in result.stderr.lower()
    assert os.environ.get("AIWF_DEBUG") == "1" or "Traceback" not in result.stderr
