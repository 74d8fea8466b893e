"""The deploy's decisions via pyinfra's API on the ``@fake`` connector: facts in, commands out."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aiwf.certs import create_self_signed
from aiwf.deploy.operations import converge_stack, health_status, require_healthy, unpack_archive
from aiwf.deploy.settings import DeploySettings
from aiwf.deploy.stack import HostInput, deploy_stack

from .conftest import DEBIAN_HOST, FakeRun

RunDeploy = Callable[..., FakeRun]


def _input(tmp_path: Path, **settings: Any) -> HostInput:
    base: dict[str, Any] = {
        "project": "fakestack",
        "paths": {"data_dir": str(tmp_path / "data")},
        "services": {"dashboard": {"enabled": False}},
    }
    base.update(settings)
    return HostInput(settings=base, source="test inventory")


def _mutating(run: FakeRun) -> list[str]:
    """Commands that change the host (facts only read)."""
    words = ("apt-get", "mkdir -p", "tar -xzf", "python3 -m venv", " up --build", "systemctl")
    return [command for command in run.commands if any(word in command for word in words)]


def test_fresh_debian_host_gets_packages_sources_venv_and_up(
    run_deploy: RunDeploy, tmp_path: Path
) -> None:
    run = run_deploy(deploy_stack, dict(DEBIAN_HOST), given=_input(tmp_path))
    assert not run.failed
    assert run.has("apt-get update")
    assert run.has("docker.io")
    assert run.has("python3 -m venv")
    assert run.has("tar -xzf")
    assert run.has(str(tmp_path / "data" / "aiwf" / "bin" / "aiwf") + " up --build")
    assert run.has("systemctl enable docker.service") or run.has("systemctl enable docker")
    assert run.has("aiwf-backup-fakestack.timer")


def test_unsupported_distribution_stops_before_any_change(
    run_deploy: RunDeploy, tmp_path: Path
) -> None:
    responses = dict(DEBIAN_HOST)
    responses["os-release"] = ["distribution=centos", "version=9", "uid=0", "systemd=yes"]
    run = run_deploy(deploy_stack, responses, given=_input(tmp_path))
    assert run.failed
    assert _mutating(run) == []


def test_port_held_by_another_program_stops_before_any_change(
    run_deploy: RunDeploy, tmp_path: Path
) -> None:
    responses = dict(DEBIAN_HOST)
    responses["os-release"] = [
        *DEBIAN_HOST["os-release"],
        'listen443=LISTEN 0 511 0.0.0.0:443 0.0.0.0:* users:(("apache2",pid=812,fd=4))',
        "publish443=",
    ]
    run = run_deploy(deploy_stack, responses, given=_input(tmp_path))
    assert run.failed
    assert _mutating(run) == []


def test_port_held_by_our_own_nginx_is_fine(run_deploy: RunDeploy, tmp_path: Path) -> None:
    responses = dict(DEBIAN_HOST)
    responses["os-release"] = [
        *DEBIAN_HOST["os-release"],
        'listen443=LISTEN 0 4096 0.0.0.0:443 0.0.0.0:* users:(("docker-proxy",pid=9,fd=4))',
        "publish443=fakestack-nginx",
    ]
    run = run_deploy(deploy_stack, responses, given=_input(tmp_path))
    assert not run.failed


def test_login_without_root_and_without_sudo_stops_at_once(
    run_deploy: RunDeploy, tmp_path: Path
) -> None:
    responses = dict(DEBIAN_HOST)
    responses["id -un"] = ["user=deploy", "uid=1000", "sudo=no"]
    run = run_deploy(deploy_stack, responses, given=_input(tmp_path))
    assert run.failed
    assert not run.has("os-release")  # no privileged fact was even read
    assert _mutating(run) == []


def test_docker_repository_setting_adds_dockers_apt_source(
    run_deploy: RunDeploy, tmp_path: Path
) -> None:
    given = HostInput(
        settings=_input(tmp_path).settings,
        source="test",
        deploy=DeploySettings(docker_source="docker"),
    )
    run = run_deploy(deploy_stack, dict(DEBIAN_HOST), given=given)
    assert run.has("download.docker.com/linux/debian")
    assert run.has("docker-ce")
    assert not run.has("docker.io")


def test_host_without_systemd_starts_dockerd_only_when_it_does_not_answer(
    run_deploy: RunDeploy, tmp_path: Path
) -> None:
    responses = dict(DEBIAN_HOST)
    responses["os-release"] = [
        line.replace("systemd=yes", "systemd=no").replace("docker=yes", "docker=no")
        for line in DEBIAN_HOST["os-release"]
    ]
    run = run_deploy(deploy_stack, responses, given=_input(tmp_path))
    assert run.has("nohup dockerd")
    assert not run.has("systemctl")


def test_a_live_lock_of_another_deploy_stops_the_host(
    run_deploy: RunDeploy, tmp_path: Path
) -> None:
    holder = {
        "token": "t",
        "machine": "elsewhere",
        "pid": 1,
        "since": datetime.now(UTC).isoformat(),
    }
    responses = {f"{tmp_path}/data/aiwf/deploy.lock": ["present", json.dumps(holder)]}
    responses.update(DEBIAN_HOST)
    run = run_deploy(deploy_stack, responses, given=_input(tmp_path))
    assert run.failed
    assert _mutating(run) == []


def test_a_stale_lock_from_this_machine_is_taken_over(
    run_deploy: RunDeploy, tmp_path: Path
) -> None:
    holder = {
        "token": "t",
        "machine": socket.gethostname(),
        "pid": 2**22 + 17,  # no such process
        "since": datetime.now(UTC).isoformat(),
    }
    responses = {f"{tmp_path}/data/aiwf/deploy.lock": ["present", json.dumps(holder)]}
    responses.update(DEBIAN_HOST)
    run = run_deploy(deploy_stack, responses, given=_input(tmp_path))
    assert not run.failed
    assert run.has("noclobber")


def test_unpack_is_skipped_when_the_marker_holds_the_digest(run_deploy: RunDeploy) -> None:
    responses = {"/srv/src/.aiwf-archive.sha256": ["present", "abc123"]}
    same = run_deploy(
        unpack_archive, responses, archive="/srv/a.tar.gz", destination="/srv/src", digest="abc123"
    )
    assert not any("tar -xzf" in command for command in same.commands)
    other = run_deploy(
        unpack_archive, responses, archive="/srv/a.tar.gz", destination="/srv/src", digest="def456"
    )
    assert other.has("tar -xzf /srv/a.tar.gz -C /srv/src.new")
    assert other.has("mv /srv/src.new /srv/src")


def test_converge_runs_up_only_for_a_plan_or_changed_inputs(run_deploy: RunDeploy) -> None:
    empty = {
        "up --json": [
            '{"missing_images": [], "steps": [{"action": "nothing", "target": "nginx",'
            ' "reason": "up to date (healthy)"}]}'
        ]
    }
    idle = run_deploy(converge_stack, empty, command="/x/aiwf", inputs_changed=lambda: False)
    assert not idle.has("/x/aiwf up --build")
    changed = run_deploy(converge_stack, empty, command="/x/aiwf", inputs_changed=lambda: True)
    assert changed.has("/x/aiwf up --build")
    drifted = {"up --json": ['{"missing_images": [], "steps": [{"action": "create"}]}']}
    plan = run_deploy(converge_stack, drifted, command="/x/aiwf", inputs_changed=lambda: False)
    assert plan.has("/x/aiwf up --build")


def test_plane_key_never_appears_in_commands_or_operation_arguments(
    run_deploy: RunDeploy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PLANE_KEY", "pk-very-secret-0123")
    given = _input(
        tmp_path,
        services={
            "dashboard": {"enabled": False},
            "orchestrator": {"plane": {"api_key_env": "TEST_PLANE_KEY"}},
        },
    )
    run = run_deploy(deploy_stack, dict(DEBIAN_HOST), given=given)
    assert not run.failed
    shown = " ".join(run.commands) + json.dumps(
        {h: list(meta.args) + sorted(meta.names) for h, meta in run.state.op_meta.items()}
    )
    assert "pk-very-secret-0123" not in shown
    assert any(
        "Plane API key" in name for meta in run.state.op_meta.values() for name in meta.names
    )


def test_missing_plane_variable_stops_the_host_naming_the_field(
    run_deploy: RunDeploy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_PLANE_KEY", raising=False)
    given = _input(
        tmp_path,
        services={
            "dashboard": {"enabled": False},
            "orchestrator": {"plane": {"api_key_env": "TEST_PLANE_KEY"}},
        },
    )
    run = run_deploy(deploy_stack, dict(DEBIAN_HOST), given=given)
    assert run.failed
    assert _mutating(run) == []


def _check(check: str, target: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"check": check, "target": target, "ok": ok, "detail": detail, "value": None}


def test_health_verdict_forgives_only_a_backup_that_was_never_made() -> None:
    first_deploy = {
        "healthy": False,
        "checks": [
            _check("container", "nginx", True, "running, healthy"),
            _check("backup", "tmux-session-data", False, "no verified backup"),
        ],
    }
    assert health_status(first_deploy) == (True, "healthy")
    stale = {"healthy": False, "checks": [_check("backup", "x", False, "newest is 80 h old")]}
    assert health_status(stale) == (False, "backup x: newest is 80 h old")
    down = {"healthy": False, "checks": [_check("container", "nginx", False, "no container")]}
    assert health_status(down) == (False, "container nginx: no container")
    assert health_status(None)[0] is False
    assert health_status({"status": "unreadable"})[0] is False


def test_unhealthy_stack_fails_the_host_with_what_is_wrong(run_deploy: RunDeploy) -> None:
    report = {"healthy": False, "checks": [_check("via-nginx", "nginx", False, "refused")]}
    run = run_deploy(
        require_healthy,
        # the fake host runs every command successfully unless told: this one exits 1
        {"health --json": [json.dumps(report)], "not healthy": {"success": False}},
        command="/x/aiwf",
        attempts=2,
        interval_s=0,
    )
    assert run.failed
    assert run.has("the stack is not healthy: via-nginx nginx: refused")


def test_fresh_host_gets_a_self_signed_certificate_with_a_private_key(
    run_deploy: RunDeploy, tmp_path: Path
) -> None:
    run = run_deploy(deploy_stack, dict(DEBIAN_HOST), given=_input(tmp_path))
    certs = tmp_path / "data" / "certs"
    assert run.has(f"chmod 600 {certs}/privkey.pem")
    assert run.has(f"chmod 600 {certs}/fullchain.pem")
    assert run.has("nginx -s reload")


def test_a_good_certificate_on_the_host_is_left_alone(
    run_deploy: RunDeploy, tmp_path: Path
) -> None:
    made = tmp_path / "made"
    create_self_signed(made, ["localhost", "127.0.0.1"])
    responses = {
        f"{tmp_path}/data/certs/fullchain.pem": [
            "present",
            *made.joinpath("fullchain.pem").read_text().splitlines(),
        ],
    }
    responses.update(DEBIAN_HOST)
    run = run_deploy(deploy_stack, responses, given=_input(tmp_path))
    assert not run.failed
    assert not run.has("privkey.pem")
    renamed = _input(tmp_path, domains=["ai.example.com"])
    again = run_deploy(deploy_stack, responses, given=renamed)
    assert again.has("privkey.pem")  # the old one does not cover the new name


def test_hosts_of_one_inventory_each_get_their_own_settings(tmp_path: Path) -> None:
    from pyinfra.api.config import Config
    from pyinfra.api.connect import connect_all
    from pyinfra.api.deploy import add_deploy
    from pyinfra.api.inventory import Inventory
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import State
    from pyinfra.connectors.fake import FakeConnector

    data = {"fake_responses": dict(DEBIAN_HOST), "fake_delay": 0, "fake_delay_jitter": 0}
    inventory = Inventory((["@fake/one", "@fake/two"], data))  # type: ignore[no-untyped-call]
    state = State(inventory, Config())  # type: ignore[no-untyped-call]
    connect_all(state)
    for name in ("one", "two"):
        target = inventory.get_host(f"@fake/{name}")
        given = _input(tmp_path, project=f"stack{name}", paths={"data_dir": f"/srv/{name}"})
        add_deploy(state, deploy_stack, given=given, host=target)
    run_ops(state)  # both hosts in parallel, pyinfra's own way
    for name, other in (("one", "two"), ("two", "one")):
        connector = inventory.get_host(f"@fake/{name}").connector
        assert isinstance(connector, FakeConnector)
        commands = " ".join(connector.executed_commands)
        assert f"/srv/{name}/aiwf/bin/aiwf up --build" in commands
        assert f"/srv/{other}" not in commands
        assert f"aiwf-backup-stack{name}.timer" in commands
