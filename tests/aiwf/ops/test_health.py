"""The health sweep names a stopped container, an expiring certificate and a stale backup."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aiwf import certs, health
from aiwf.backup import store
from aiwf.config import StackConfig

from .conftest import make_settings, write_inventory


def _fake_verified_archive(config: StackConfig, volume: str, age: dt.timedelta) -> Path:
    backup_dir = config.paths.backup_dir
    assert backup_dir is not None
    backup_dir.mkdir(parents=True, exist_ok=True)
    moment = dt.datetime.now(dt.UTC) - age
    archive = backup_dir / store.archive_name(config.project, volume, moment, "zstd")
    archive.write_bytes(b"archive bytes")
    store.record_verified(archive, {"volume": volume})
    return archive


def test_backup_age_and_certificate_checks(stack: StackConfig) -> None:
    assert stack.paths.certs_dir is not None
    certs.create_self_signed(stack.paths.certs_dir, certs.certificate_names(stack), days=5)
    _fake_verified_archive(stack, "tmux-session-data", dt.timedelta(hours=2))
    _fake_verified_archive(stack, "plane-orchestrator-data", dt.timedelta(hours=50))

    by_target = {result.target: result for result in health.check_backups(stack)}
    assert by_target["tmux-session-data"].ok
    assert not by_target["plane-orchestrator-data"].ok
    assert "50.0 h old" in by_target["plane-orchestrator-data"].detail
    assert by_target["plane-orchestrator-logs"].detail == "no verified backup"

    cert = {result.target: result for result in health.check_certificate(stack)}
    assert not cert["days-left"].ok
    assert cert["days-left"].value is not None and 4.9 < cert["days-left"].value <= 5
    assert cert["names"].ok
    certs.create_self_signed(stack.paths.certs_dir, ["other.example.com"], days=400)
    cert = {result.target: result for result in health.check_certificate(stack)}
    assert cert["days-left"].ok
    assert not cert["names"].ok and "localhost" in cert["names"].detail


@pytest.mark.engine
def test_sweep_reports_stopped_container_and_exits_non_zero(
    docker_client: Any, base_image: str, stack: StackConfig, tmp_path: Path
) -> None:
    running = docker_client.containers.run(
        base_image,
        ["sleep", "infinity"],
        name=stack.container_name("orchestrator"),
        labels={"aiwf.project": stack.project, "aiwf.service": "orchestrator"},
        detach=True,
    )
    stopped = docker_client.containers.run(
        base_image,
        ["sleep", "infinity"],
        name=stack.container_name("tmux-sessions"),
        labels={"aiwf.project": stack.project, "aiwf.service": "tmux-sessions"},
        detach=True,
    )
    stopped.stop(timeout=1)
    containers = {result.target: result for result in health.check_containers(stack)}
    assert containers["orchestrator"].ok, containers["orchestrator"].detail
    assert not containers["tmux-sessions"].ok
    assert containers["tmux-sessions"].detail == "exited"
    assert containers["nginx"].detail == "no container"
    assert running.status in ("created", "running")

    assert stack.paths.certs_dir is not None
    certs.create_self_signed(stack.paths.certs_dir, certs.certificate_names(stack), days=5)
    _fake_verified_archive(stack, "plane-orchestrator-data", dt.timedelta(hours=100))
    root = Path(str(stack.paths.data_dir)).parent
    inventory = write_inventory(tmp_path, make_settings(root, stack.project))
    metrics = tmp_path / "textfile" / "aiwf.prom"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from aiwf.cli.main import main; main()",
            "-i",
            str(inventory),
            "health",
            "--json",
            "--prometheus",
            str(metrics),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    for named in (
        "container tmux-sessions",
        "certificate days-left",
        "backup plane-orchestrator-data",
    ):
        assert named in result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is False
    assert {"check": "container", "target": "orchestrator"}.items() <= next(
        check for check in report["checks"] if check["target"] == "orchestrator"
    ).items()
    text = metrics.read_text()
    assert (
        f'aiwf_health_ok{{project="{stack.project}",check="container",target="tmux-sessions"}} 0'
        in text
    )
    days = re.search(r'aiwf_health_value\{[^}]*target="days-left"\} ([0-9.]+)', text)
    assert days is not None and 4.9 < float(days[1]) <= 5


PROBED_NGINX = """
worker_processes 1;
error_log stderr;
pid /run/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    server { listen 80; location = /health { return 200 "healthy"; } }
    server {
        listen 443 ssl;
        ssl_certificate /etc/nginx/certs/fullchain.pem;
        ssl_certificate_key /etc/nginx/certs/privkey.pem;
        location = /health { return 200 "healthy"; }
        location = /api/orchestrator/health {
            default_type application/json;
            return 200 '{"status":"healthy","tmux_service":false,"pending_count":3}';
        }
        location /ws/ { return 401; }
    }
}
"""


@pytest.mark.engine
def test_probes_direct_and_through_nginx(
    docker_client: Any, base_image: str, project_factory: Any, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        https_port = probe.getsockname()[1]
    stack: StackConfig = project_factory("probe")
    stack = stack.model_copy(update={"ports": stack.ports.model_copy(update={"https": https_port})})
    assert stack.paths.certs_dir is not None
    certs.ensure_self_signed(stack)
    conf = tmp_path / "nginx-conf"
    conf.mkdir()
    (conf / "nginx.conf").write_text(PROBED_NGINX)
    nginx = docker_client.containers.run(
        base_image,
        ["nginx", "-c", "/etc/aiwf-test/nginx.conf", "-g", "daemon off;"],
        name=stack.container_name("nginx"),
        labels={"aiwf.project": stack.project, "aiwf.service": "nginx"},
        volumes={
            str(conf): {"bind": "/etc/aiwf-test", "mode": "ro"},
            str(stack.paths.certs_dir): {"bind": "/etc/nginx/certs", "mode": "ro"},
        },
        ports={"443/tcp": ("127.0.0.1", https_port)},
        detach=True,
    )
    deadline = time.monotonic() + 60
    while not health.check_through_nginx(stack)[0].ok and time.monotonic() < deadline:
        time.sleep(0.2)

    direct = {result.target: result for result in health.check_http_direct(stack)}
    assert direct["nginx"].ok, direct["nginx"].detail
    via = {result.check: result for result in health.check_through_nginx(stack)}
    assert via["via-nginx"].ok
    assert not via["orchestrator"].ok  # it answers, but says tmux-sessions is unreachable
    assert "tmux_service=False" in via["orchestrator"].detail
    assert "pending_count=3" in via["orchestrator"].detail
    websocket = health.check_websocket(stack)[0]
    assert websocket.ok and "HTTP 401" in websocket.detail

    nginx.stop(timeout=1)
    assert not any(result.ok for result in health.check_through_nginx(stack))
    assert not health.check_websocket(stack)[0].ok
