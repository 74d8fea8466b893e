"""The health sweep names a stopped container, an expiring certificate and a stale backup."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
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
