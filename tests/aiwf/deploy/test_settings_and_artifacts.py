"""Host settings, deploy settings, the uploaded artifacts and the CLI's checks before connecting."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from aiwf.config import load_config
from aiwf.deploy.artifacts import build_wheel, source_archives
from aiwf.deploy.entry import pyinfra_arguments
from aiwf.deploy.settings import (
    DeploySettings,
    HostDefaults,
    RemoteLayout,
    host_config,
    host_settings,
    host_settings_text,
    read_agent_key,
    read_plane_key,
)
from aiwf.errors import ConfigError, DeployError
from aiwf.paths import project_root

AIWF = str(Path(sys.executable).with_name("aiwf"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _layout() -> RemoteLayout:
    return RemoteLayout(PurePosixPath("/srv/stack/aiwf"))


def test_machine_dependent_defaults_come_from_the_host() -> None:
    settings = host_settings(
        {"paths": {"data_dir": "/srv/stack"}}, HostDefaults(home="/home/ops"), _layout()
    )
    config = host_config(settings, "test")
    assert str(config.paths.home) == "/home/ops"
    assert str(config.paths.tmux_socket_dir) == "/srv/stack/agent/tmux"
    assert str(config.paths.certs_dir) == "/srv/stack/certs"


def test_given_paths_win_over_host_defaults() -> None:
    given = {"paths": {"home": "/home/me", "tmux_socket_dir": "/run/tmux", "certs_dir": "/c"}}
    settings = host_settings(given, HostDefaults(home="/root"), _layout())
    assert settings["paths"]["home"] == "/home/me"
    assert settings["paths"]["tmux_socket_dir"] == "/run/tmux"
    assert settings["paths"]["certs_dir"] == "/c"


def test_plane_key_travels_as_a_file_and_never_in_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_PLANE_KEY", "plane-secret-value")
    raw = {"services": {"orchestrator": {"plane": {"api_key_env": "TEST_PLANE_KEY"}}}}
    assert read_plane_key(raw) == "plane-secret-value"
    settings = host_settings(raw, HostDefaults(home="/root"), _layout())
    text = host_settings_text(settings)
    assert "plane-secret-value" not in text
    plane = settings["services"]["orchestrator"]["plane"]
    assert plane["api_key_file"] == "/srv/stack/aiwf/secrets/plane_api_key"
    assert plane["api_key_env"] is None


def test_agent_key_travels_as_a_file_and_never_in_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = tmp_path / "agent-key"
    key.write_text("sk-ant-agent-secret\n")
    raw = {"agent": {"api_key_file": str(key)}}
    assert read_agent_key(raw) == "sk-ant-agent-secret"
    settings = host_settings(raw, HostDefaults(home="/root"), _layout())
    assert "sk-ant-agent-secret" not in host_settings_text(settings)
    assert settings["agent"]["api_key_file"] == "/srv/stack/aiwf/secrets/anthropic_api_key"
    key.write_text("")
    with pytest.raises(DeployError, match=r"agent\.api_key_file: .* is empty"):
        read_agent_key(raw)


def test_missing_plane_variable_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_PLANE_KEY", raising=False)
    raw = {"services": {"orchestrator": {"plane": {"api_key_env": "TEST_PLANE_KEY"}}}}
    with pytest.raises(DeployError, match=r"services\.orchestrator\.plane\.api_key_env"):
        read_plane_key(raw)


def test_host_settings_file_is_an_inventory_the_host_loads_back(tmp_path: Path) -> None:
    settings = host_settings(
        {"project": "other", "ports": {"https": 8443}},
        HostDefaults(home="/root"),
        _layout(),
    )
    path = tmp_path / "host.py"
    path.write_text(host_settings_text(settings))
    assert host_settings_text(settings) == host_settings_text(dict(reversed(settings.items())))
    config = load_config(path, "@local")
    assert config.project == "other"
    assert config.ports.https == 8443


def test_bad_deploy_setting_names_its_field() -> None:
    with pytest.raises(ConfigError, match=r"aiwf_deploy\.docker_source"):
        DeploySettings.from_host_data({"docker_source": "snap"}, "inventory.py")
    with pytest.raises(ConfigError, match=r"aiwf_deploy\.instal_dir: unknown setting"):
        DeploySettings.from_host_data({"instal_dir": "/x"}, "inventory.py")


def test_wheel_is_reproducible_and_installable(tmp_path: Path) -> None:
    first = build_wheel(project_root(), tmp_path / "a")
    second = build_wheel(project_root(), tmp_path / "b")
    assert first.name == second.name
    assert _digest(first) == _digest(second)
    with zipfile.ZipFile(first) as wheel:
        names = wheel.namelist()
        entry_points = wheel.read(next(n for n in names if n.endswith("entry_points.txt")))
        assert wheel.testzip() is None
    assert "aiwf/deploy/stack.py" in names
    assert b"aiwf = aiwf.cli.entry:main" in entry_points
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), first],
        check=True,
    )
    assert (target / "aiwf" / "deploy" / "stack.py").is_file()


def test_a_change_in_one_service_changes_only_its_archive(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "templates").mkdir(parents=True)
    (root / "templates" / "nginx.conf.j2").write_text("events {}\n")
    for name in ("orchestrator", "nginx"):
        folder = root / "services" / name
        folder.mkdir(parents=True)
        (folder / "Dockerfile").write_text(f"FROM {name}\n")
        (folder / "__pycache__").mkdir()
        (folder / "__pycache__" / "x.pyc").write_bytes(b"cache")
    before = {
        k: _digest(v)
        for k, v in source_archives(root, ["orchestrator", "nginx"], tmp_path / "1").items()
    }
    (root / "services" / "orchestrator" / "Dockerfile").write_text("FROM changed\n")
    (root / "services" / "nginx" / "__pycache__" / "x.pyc").write_bytes(b"other cache")
    after = {
        k: _digest(v)
        for k, v in source_archives(root, ["orchestrator", "nginx"], tmp_path / "2").items()
    }
    assert before["services-nginx"] == after["services-nginx"]
    assert before["templates"] == after["templates"]
    assert before["services-orchestrator"] != after["services-orchestrator"]


def test_inventory_and_dry_are_read_from_pyinfras_command_line(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.py"
    inventory.write_text("hosts = ['a']\n")
    script = (
        "import sys, pyinfra_cli.cli\n"
        "from aiwf.deploy.entry import pyinfra_arguments\n"
        "from aiwf.errors import DeployError\n"
        "print(pyinfra_arguments([sys.argv[1], 'deploy.py', '--dry']))\n"
        "print(pyinfra_arguments(['-y', sys.argv[1], 'deploy.py']))\n"
        "try:\n"
        "    pyinfra_arguments(['a.example.com', 'deploy.py'])\n"
        "except DeployError as error:\n"
        "    print(error)\n"
    )
    # pyinfra's parser monkey-patches its process for gevent: keep that out of this one.
    result = subprocess.run(
        [sys.executable, "-c", script, str(inventory)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == f"(PosixPath('{inventory}'), True)"
    assert lines[1] == f"(PosixPath('{inventory}'), False)"
    assert "reads the stack's settings from an inventory file" in lines[2]


def test_deploy_file_outside_pyinfras_command_line_says_how_to_run_it() -> None:
    with pytest.raises(DeployError, match=r"pyinfra INVENTORY deploy\.py"):
        pyinfra_arguments(["x.py", "deploy.py"])


def test_cli_rejects_a_bad_value_before_connecting(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.py"
    # The host is unreachable on purpose: a connection attempt would fail differently.
    inventory.write_text(
        "hosts = [('good', {'ssh_port': 1}),"
        " ('bad', {'ssh_port': 1, 'aiwf': {'ports': {'https': 70000}}})]\n"
    )
    result = subprocess.run(
        [AIWF, "deploy", "--inventory", str(inventory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2
    assert "ports.https: 70000 is not a valid port" in result.stderr
    assert "host bad" in result.stderr
    assert "Connecting" not in result.stderr + result.stdout


def test_cli_rejects_an_unknown_limit(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.py"
    inventory.write_text("hosts = ['one']\n")
    result = subprocess.run(
        [AIWF, "deploy", "--inventory", str(inventory), "--limit", "two"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--limit two: no such host" in result.stderr


def test_project_checkout_has_what_the_deploy_ships() -> None:
    root = project_root()
    assert (root / "deploy.py").is_file()
    assert shutil.which("tar") is not None
