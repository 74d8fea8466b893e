"""The rendered compose file and logrotate file, and how ``aiwf render`` writes them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiwf.config import StackConfig, validate
from aiwf.render import (
    FileState,
    RenderContext,
    compare_rendered,
    register_renderer,
    render_all,
    renderers,
    write_rendered,
)
from aiwf.stack import desired_services, secrets_dir

Make = Callable[..., StackConfig]


def _compose(config: StackConfig, context: RenderContext | None = None) -> dict[str, Any]:
    document = yaml.safe_load(render_all(config, context)["compose.yaml"])
    assert isinstance(document, dict)
    return document


def test_compose_holds_the_desired_services(make_config: Make) -> None:
    config = make_config({"speech": {"mode": "local"}})
    compose = _compose(config)
    specs = {spec.service: spec for spec in desired_services(config)}
    assert "name" not in compose  # docker-compose 1.29 rejects it; the project is in .env
    assert render_all(config)[".env"].endswith("\nCOMPOSE_PROJECT_NAME=aiwf-test\n")
    assert list(compose["services"]) == [
        "sandbox",
        "tmux-sessions",
        "orchestrator",
        "whisper",
        "dashboard",
        "nginx",
    ]
    for name, service in compose["services"].items():
        spec = specs[name]
        assert service["image"] == f"aiwf-test-{name}"
        assert service["container_name"] == f"aiwf-test-{name}"
        assert service["build"]["context"].endswith(f"/services/{spec.build_folder}")
        assert service["build"]["args"] == {"BASE_IMAGE": spec.base_image, **spec.build_args}
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"] == list(spec.healthcheck.test)
        if not spec.isolated:
            assert service["networks"] == {"ai-workflow-network": {"aliases": [name]}}
        assert service.get("environment", {}) == spec.environment
        assert service["logging"] == {
            "driver": "json-file",
            "options": {"max-size": "10m", "max-file": "3"},
        }
        assert "profiles" not in service
    assert compose["networks"] == {
        "ai-workflow-network": {"name": "aiwf-test-network", "driver": "bridge"}
    }
    assert compose["volumes"] == {
        "tmux-session-data": {"name": "aiwf-test_tmux-session-data"},
        "plane-orchestrator-data": {"name": "aiwf-test_plane-orchestrator-data"},
        "plane-orchestrator-logs": {"name": "aiwf-test_plane-orchestrator-logs"},
    }
    # The agent's uid reaches the two images that run as it, and no other.
    uid = {"APP_UID": "1000", "APP_GID": "1000"}
    assert compose["services"]["sandbox"]["build"]["args"]["APP_UID"] == uid["APP_UID"]
    assert compose["services"]["tmux-sessions"]["build"]["args"]["APP_GID"] == uid["APP_GID"]
    assert "APP_UID" not in compose["services"]["orchestrator"]["build"]["args"]
    # The sandbox joins no stack network, keeps no capability and gains no privilege.
    sandbox = compose["services"]["sandbox"]
    assert sandbox["network_mode"] == "bridge" and "networks" not in sandbox
    assert sandbox["cap_drop"] == ["ALL"] and sandbox["security_opt"] == ["no-new-privileges"]


def test_compose_dependencies_wait_for_health(make_config: Make) -> None:
    compose = _compose(make_config({"speech": {"mode": "local"}}))["services"]
    healthy = {"condition": "service_healthy"}
    assert "depends_on" not in compose["sandbox"]
    assert compose["tmux-sessions"]["depends_on"] == {"sandbox": healthy}
    assert compose["orchestrator"]["depends_on"] == {"tmux-sessions": healthy}
    assert compose["nginx"]["depends_on"] == {
        "dashboard": healthy,
        "tmux-sessions": healthy,
        "orchestrator": healthy,
        "whisper": healthy,
    }


def test_only_nginx_publishes_ports(make_config: Make) -> None:
    compose = _compose(make_config({"ports": {"http": 8080, "https": 8443, "bind": "127.0.0.1"}}))
    published = {name: s["ports"] for name, s in compose["services"].items() if "ports" in s}
    assert published == {"nginx": ["127.0.0.1:8080:80", "127.0.0.1:8443:443"]}


def test_volumes_and_secrets_are_mounted_not_inlined(make_config: Make, tmp_path: Path) -> None:
    config = make_config(
        {"services": {"orchestrator": {"plane": {"api_key_env": "PLANE_API_KEY_FOR_TEST"}}}}
    )
    folder = Path(secrets_dir(config))
    folder.mkdir(parents=True)
    values = {
        "session_key": "s3ss10n-k3y-value",
        "service_token": "t0k3n-value",
        "admin_password": "adm1n-pa55",
        "plane_api_key": "plane-k3y-value",
    }
    for name, value in values.items():
        (folder / name).write_text(value)
    os.environ["PLANE_API_KEY_FOR_TEST"] = values["plane_api_key"]
    try:
        text = render_all(config)["compose.yaml"]
    finally:
        del os.environ["PLANE_API_KEY_FOR_TEST"]
    for value in values.values():
        assert value not in text
    services = yaml.safe_load(text)["services"]
    tmux_mounts = services["tmux-sessions"]["volumes"]
    assert {"type": "volume", "source": "tmux-session-data", "target": "/app/data"} in tmux_mounts
    for name in ("session_key", "service_token", "admin_password"):
        assert {
            "type": "bind",
            "source": str(folder / name),
            "target": f"/run/secrets/{name}",
            "read_only": True,
        } in tmux_mounts
    orchestrator = services["orchestrator"]
    assert (
        orchestrator["environment"]["ORCHESTRATOR_PLANE_API_KEY_FILE"]
        == "/run/secrets/plane_api_key"
    )
    assert {
        "type": "bind",
        "source": str(folder / "plane_api_key"),
        "target": "/run/secrets/plane_api_key",
        "read_only": True,
    } in orchestrator["volumes"]
    targets = {m["target"] for m in orchestrator["volumes"]}
    assert {"/app/data", "/app/logs"} <= targets


def test_whisper_waits_in_a_profile_while_speech_is_off(make_config: Make) -> None:
    compose = _compose(make_config({"speech": {"mode": "off"}}))
    whisper = compose["services"]["whisper"]
    assert whisper["profiles"] == ["speech"]
    assert "whisper" not in compose["services"]["nginx"]["depends_on"]
    assert all("profiles" not in s for n, s in compose["services"].items() if n != "whisper")


def test_compose_keeps_dollar_signs_literal(make_config: Make) -> None:
    config = make_config(
        {"services": {"orchestrator": {"agent_command": "claude --prompt \"$TICKET\" 'x: y'"}}}
    )
    text = render_all(config)["compose.yaml"]
    environment = yaml.safe_load(text)["services"]["orchestrator"]["environment"]
    # Doubled for compose, which turns $$ back into $ when it reads the file.
    assert environment["ORCHESTRATOR_AGENT_COMMAND"] == "claude --prompt \"$$TICKET\" 'x: y'"


def test_resource_limits_render(make_config: Make) -> None:
    config = make_config({"services": {"nginx": {"resources": {"cpus": 1.5, "memory": "256m"}}}})
    nginx = _compose(config)["services"]["nginx"]
    assert nginx["cpus"] == 1.5
    assert nginx["mem_limit"] == "256m"


@pytest.mark.parametrize("speech", ["off", "local"])
def test_docker_compose_accepts_the_file(make_config: Make, tmp_path: Path, speech: str) -> None:
    compose_binary = shutil.which("docker-compose")
    if compose_binary is None:
        pytest.skip("docker-compose is not installed (make deps installs it)")
    config = make_config({"speech": {"mode": speech}})
    services = tmp_path / "services"
    for folder in ("sandbox", "nginx", "dashboard", "tmux-sessions", "orchestrator", "whisper"):
        (services / folder).mkdir(parents=True)
    context = RenderContext.for_stack(config).with_changes(services_dir=str(services))
    compose_file = tmp_path / "compose.yaml"
    files = render_all(config, context)
    compose_file.write_text(files["compose.yaml"])
    (tmp_path / ".env").write_text(files[".env"])
    result = subprocess.run(
        [compose_binary, "-f", str(compose_file), "--profile", "speech", "config"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    understood = yaml.safe_load(result.stdout)
    assert set(understood["services"]) == {
        "sandbox",
        "tmux-sessions",
        "orchestrator",
        "whisper",
        "dashboard",
        "nginx",
    }
    assert understood["services"]["nginx"]["depends_on"]["orchestrator"] == {
        "condition": "service_healthy"
    }


# --- logrotate ------------------------------------------------------------------------------


def _logrotate() -> str:
    binary = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin:/sbin")
    if binary is None:
        pytest.skip("logrotate is not installed (make deps installs it)")
    return binary


def _logrotate_setup(make_config: Make, tmp_path: Path, **rotation: Any) -> tuple[Path, Path, Path]:
    config = make_config({"logrotate": rotation})
    docker_root = tmp_path / "docker"
    context = RenderContext.for_stack(config).with_changes(docker_root=str(docker_root))
    orchestrator_logs = docker_root / "volumes" / "aiwf-test_plane-orchestrator-logs" / "_data"
    nginx_logs = config.paths.data_dir / "logs" / "nginx"
    for folder in (orchestrator_logs, nginx_logs):
        folder.mkdir(parents=True)
        (folder.parent).chmod(0o755)
    (orchestrator_logs / "orchestrator.log").write_text("started\n")
    (nginx_logs / "access.log").write_text("GET /\n")
    (nginx_logs / "error.log").write_text("warn\n")
    conf = tmp_path / "logrotate.conf"
    conf.write_text(render_all(config, context)["logrotate.conf"])
    conf.chmod(0o644)
    return conf, orchestrator_logs, nginx_logs


def test_logrotate_accepts_the_file(make_config: Make, tmp_path: Path) -> None:
    conf, orchestrator_logs, nginx_logs = _logrotate_setup(make_config, tmp_path)
    result = subprocess.run(
        [_logrotate(), "-d", "-s", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = result.stdout + result.stderr
    assert f"considering log {orchestrator_logs}/orchestrator.log" in report
    assert f"considering log {nginx_logs}/access.log" in report
    assert "error:" not in report


def test_logrotate_rotates_with_the_configured_policy(make_config: Make, tmp_path: Path) -> None:
    conf, orchestrator_logs, nginx_logs = _logrotate_setup(
        make_config, tmp_path, frequency="weekly", rotate=3, compress=False
    )
    text = conf.read_text()
    assert "    weekly\n    rotate 3\n    maxsize 100M\n    nocompress\n" in text
    assert "docker kill --signal USR1 aiwf-test-nginx" in text
    result = subprocess.run(
        [_logrotate(), "-f", "-s", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (orchestrator_logs / "orchestrator.log.1").read_text() == "started\n"
    assert (orchestrator_logs / "orchestrator.log").read_text() == ""  # created anew
    assert (nginx_logs / "access.log.1").read_text() == "GET /\n"


# --- rendering and writing ------------------------------------------------------------------


def test_same_config_same_bytes(make_config: Make) -> None:
    first = render_all(make_config({"speech": {"mode": "local"}}))
    second = render_all(make_config({"speech": {"mode": "local"}}))
    assert first == second
    assert set(first) >= {"nginx.conf", "compose.yaml", "logrotate.conf"}


def test_writer_reports_created_changed_unchanged(make_config: Make, tmp_path: Path) -> None:
    out = tmp_path / "out"
    files = render_all(make_config())
    created = write_rendered(files, out)
    assert {r.name: r.state for r in created} == dict.fromkeys(files, FileState.CREATED)
    again = write_rendered(render_all(make_config()), out)
    assert {r.state for r in again} == {FileState.UNCHANGED}
    changed = write_rendered(render_all(make_config({"speech": {"mode": "local"}})), out)
    states = {r.name: r.state for r in changed}
    assert states["nginx.conf"] is FileState.CHANGED
    assert states["compose.yaml"] is FileState.CHANGED
    assert states["logrotate.conf"] is FileState.UNCHANGED
    assert states[".env"] is FileState.UNCHANGED
    assert sorted(p.name for p in out.iterdir()) == sorted(files)  # no temp files left


def test_compare_writes_nothing(make_config: Make, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = compare_rendered(render_all(make_config()), out)
    assert {r.state for r in results} == {FileState.CREATED}
    assert not out.exists()


def test_renderers_are_a_registry(make_config: Make) -> None:
    assert list(renderers())[:4] == ["nginx.conf", "compose.yaml", ".env", "logrotate.conf"]
    with pytest.raises(ValueError, match="already registered"):
        register_renderer("nginx.conf")(lambda config, context: "")


def test_local_ticket_source_gives_the_daemon_no_plane_settings(tmp_path: Path) -> None:
    """``ticket_source: local`` keeps Plane out even when Plane settings and .claude.json exist."""
    claude_json = tmp_path / "claude.json"
    claude_json.write_text('{"mcpServers": {"plane": {"env": {"PLANE_API_KEY": "k"}}}}')
    plane = {"api_url": "https://plane.example.com/api/v1", "workspace_slug": "acme"}
    settings = {"paths": {"data_dir": str(tmp_path / "data"), "claude_json": str(claude_json)}}
    for source, plane_expected in (("auto", True), ("local", False)):
        config = validate(
            {
                **settings,
                "services": {"orchestrator": {"ticket_source": source, "plane": plane}},
            }
        )
        services = yaml.safe_load(render_all(config)["compose.yaml"])["services"]
        orchestrator = services["orchestrator"]
        targets = {mount["target"] for mount in orchestrator["volumes"]}
        assert ("PLANE_API_URL" in orchestrator["environment"]) is plane_expected
        assert ("/app/config/claude.json" in targets) is plane_expected


def _claude_json_mounted(compose: dict[str, Any]) -> bool:
    volumes = compose["services"]["orchestrator"].get("volumes", [])
    return any("/app/config/claude.json" in str(volume) for volume in volumes)


def test_claude_json_is_mounted_where_it_exists_on_the_host_that_runs_the_stack(
    make_config: Make, tmp_path: Path
) -> None:
    config = make_config()
    claude_json = config.paths.claude_json
    assert claude_json == tmp_path / "home" / ".claude.json"
    context = RenderContext.for_stack(config)
    assert not _claude_json_mounted(_compose(config))  # not on this machine
    # A deploy renders here for another host: what that host has decides.
    assert _claude_json_mounted(_compose(config, context.with_changes(claude_json_present=True)))
    claude_json.parent.mkdir(parents=True)
    claude_json.write_text("{}")
    assert _claude_json_mounted(_compose(config))
    assert not _claude_json_mounted(
        _compose(config, context.with_changes(claude_json_present=False))
    )
