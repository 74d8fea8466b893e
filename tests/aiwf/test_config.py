"""The one validated config: defaults, bad values named by field path, the CLI's error path."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiwf.config import load_config, validate
from aiwf.errors import ConfigError

Aiwf = Callable[..., subprocess.CompletedProcess[str]]

#: (settings, field path the message must name, a word of the explanation it must give)
BAD_SETTINGS: list[tuple[dict[str, Any], str, str]] = [
    ({"servcies": {}}, "servcies", "unknown setting; did you mean 'services'?"),
    ({"services": {"orchestrator": {"prot": 5002}}}, "services.orchestrator.prot", "port"),
    ({"services": {"orchestrator": {"port": 70000}}}, "services.orchestrator.port", "70000"),
    ({"services": {"tmux_sessions": {"port": 0}}}, "services.tmux_sessions.port", "valid port"),
    ({"ports": {"http": 8443, "https": 8443}}, "ports.https", "different ports"),
    ({"domains": ["bad_domain!.example.com"]}, "domains[0]", "bad_domain!.example.com"),
    ({"domains": []}, "domains", "at least 1"),
    ({"paths": {"data_dir": "relative/data"}}, "paths.data_dir", "absolute"),
    ({"speech": {"mode": "remote"}}, "speech.url", "not set"),
    ({"speech": {"mode": "local", "url": "http://gpu:8000"}}, "speech.url", "mode: remote"),
    ({"speech": {"mode": "loud"}}, "speech.mode", "'off', 'local' or 'remote'"),
    ({"speech": {"mode": "remote", "url": "gpu:8000"}}, "speech.url", "not an http(s) URL"),
    ({"backup": {"retention": {"keep_last": 0}}}, "backup.retention.keep_last", "1"),
    ({"tls": {"mode": "acme"}}, "tls.mode", "'self-signed', 'letsencrypt' or 'files'"),
    ({"tls": {"mode": "files"}}, "tls.cert_file, tls.key_file", "required"),
    ({"tls": {"mode": "letsencrypt", "domains": []}}, "tls.domains", "unknown setting"),
    ({"cors_origins": ["*"]}, "cors_origins[0]", "not allowed"),
    ({"cors_origins": ["https://a.example.com/path"]}, "cors_origins[0]", "not an origin"),
    ({"project": "Ai Workflow"}, "project", "'Ai Workflow'"),
    ({"logrotate": {"max_size": "lots"}}, "logrotate.max_size", "'lots'"),
    ({"backup": {"schedule": "25:00"}}, "backup.schedule", "25:00"),
    (
        {"services": {"nginx": {"environment": {"BAD-NAME": "x"}}}},
        "services.nginx.environment",
        "BAD-NAME",
    ),
    ({"services": {"whisper": {"base_image": "python 3"}}}, "services.whisper.base_image", "image"),
    ({"services": {"orchestrator": {"max_active": 0}}}, "services.orchestrator.max_active", "1"),
]


@pytest.mark.parametrize(("settings", "field", "explanation"), BAD_SETTINGS)
def test_bad_setting_is_named(settings: dict[str, Any], field: str, explanation: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate(settings, "test settings")
    problems = caught.value.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{field}: "), problems[0]
    assert explanation in problems[0]
    assert str(caught.value).startswith("1 configuration problem in test settings: ")


def test_letsencrypt_needs_an_email_and_a_real_domain() -> None:
    with pytest.raises(ConfigError) as caught:
        validate({"tls": {"mode": "letsencrypt"}})
    assert caught.value.problems == [
        "tls.email: required when tls.mode is 'letsencrypt' (the ACME account's contact)"
    ]
    with pytest.raises(ConfigError) as caught:
        validate({"tls": {"mode": "letsencrypt", "email": "ops@example.com"}})
    assert caught.value.problems[0].startswith("domains: only 'localhost'")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        validate(
            {
                "ports": {"https": -1},
                "paths": {"backup_dir": "backups"},
                "speech": {"mode": "remote"},
                "extra": 1,
            }
        )
    text = "\n".join(caught.value.problems)
    for field in ("ports.https", "paths.backup_dir", "speech.url", "extra"):
        assert field in text
    assert len(caught.value.problems) == 4


def test_empty_settings_are_a_working_local_stack() -> None:
    config = validate({})
    assert config.project == "ai-workflow"
    assert config.enabled_services() == [
        "sandbox",
        "tmux-sessions",
        "orchestrator",
        "dashboard",
        "nginx",
    ]
    assert config.tls.mode == "self-signed"
    assert config.speech.mode == "off"
    assert config.network_name == "ai-workflow-network"
    assert config.cors_origins == ["https://localhost"]


def test_derived_values() -> None:
    config = validate(
        {
            "domains": ["AI.Example.com."],
            "ports": {"https": 8443},
            "speech": {"mode": "local"},
            "paths": {"data_dir": "/srv/aiwf"},
        }
    )
    assert config.domains == ["ai.example.com"]
    assert config.cors_origins == ["https://ai.example.com:8443"]
    assert config.services.whisper.enabled
    assert config.paths.backup_dir == Path("/srv/aiwf/backups")
    assert config.paths.completion_dir == Path("/srv/aiwf/completions")


def _inventory(
    tmp_path: Path, settings: dict[str, Any], shared: dict[str, Any] | None = None
) -> Path:
    folder = tmp_path / "inventory"
    (folder / "group_data").mkdir(parents=True)
    (folder / "group_data" / "all.py").write_text(f"aiwf = {shared or {}!r}\n")
    path = folder / "site.py"
    path.write_text(f"hosts = [('@local', {{'aiwf': {settings!r}}})]\n")
    return path


def test_inventory_settings_merge_over_group_data(tmp_path: Path) -> None:
    path = _inventory(
        tmp_path,
        {"services": {"orchestrator": {"max_active": 5}}},
        shared={
            "project": "shared-name",
            "services": {"orchestrator": {"poll_interval_seconds": 30}},
        },
    )
    config = load_config(path)
    assert config.project == "shared-name"
    assert config.services.orchestrator.max_active == 5
    assert config.services.orchestrator.poll_interval_seconds == 30


# --- through the command line ---------------------------------------------------------------


def test_check_lists_every_problem_and_exits_2(tmp_path: Path, aiwf: Aiwf) -> None:
    path = _inventory(
        tmp_path,
        {
            "services": {"orchestrator": {"port": 70000}},
            "speech": {"mode": "remote"},
            "paths": {"data_dir": "data"},
            "tls": {"mode": "acme"},
        },
    )
    result = aiwf("check", "--inventory", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"aiwf: 4 configuration problems in {path} (host @local):"
    for field in ("services.orchestrator.port", "speech.url", "paths.data_dir", "tls.mode"):
        assert any(line.strip().startswith(field) for line in lines[1:]), field
    assert "Traceback" not in result.stderr


def test_inventory_option_works_before_the_command_too(tmp_path: Path, aiwf: Aiwf) -> None:
    path = _inventory(tmp_path, {"project": "from-option"})
    before = aiwf("--inventory", str(path), "check")
    after = aiwf("check", "--inventory", str(path))
    assert before.returncode == after.returncode == 0
    assert "project from-option" in before.stdout
    assert before.stdout == after.stdout


def test_every_command_validates_the_config_first(tmp_path: Path, aiwf: Aiwf) -> None:
    path = _inventory(tmp_path, {"speech": {"mode": "remote"}})
    out = tmp_path / "rendered"
    result = aiwf("--inventory", str(path), "render", "--out", str(out))
    assert result.returncode == 2
    assert "speech.url" in result.stderr
    assert not out.exists()


def test_error_is_one_line_without_debug(tmp_path: Path, aiwf: Aiwf) -> None:
    missing = tmp_path / "absent.py"
    result = aiwf("check", "--inventory", str(missing))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"aiwf: 1 configuration problem: {missing}: inventory file not found; "
        "pass an existing --inventory"
    ]


def test_debug_shows_the_traceback(tmp_path: Path, aiwf: Aiwf) -> None:
    missing = tmp_path / "absent.py"
    result = aiwf("check", "--inventory", str(missing), env={"AIWF_DEBUG": "1"})
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "aiwf.errors.ConfigError" in result.stderr


def test_broken_inventory_file_is_a_config_error(tmp_path: Path, aiwf: Aiwf) -> None:
    path = tmp_path / "broken.py"
    path.write_text("hosts = [('@local', {'aiwf': {'project': 'x'}}\n")
    result = aiwf("check", "--inventory", str(path))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert str(path) in result.stderr
    assert "SyntaxError" in result.stderr


def test_usage_errors_exit_2(aiwf: Aiwf) -> None:
    result = aiwf("check", "--no-such-flag")
    assert result.returncode == 2
    assert "No such option: --no-such-flag" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_reference_needs_no_valid_config(tmp_path: Path, aiwf: Aiwf) -> None:
    path = _inventory(tmp_path, {"speech": {"mode": "remote"}})
    result = aiwf("--inventory", str(path), "config-reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Configuration reference\n")


def test_global_options_move_before_the_command_unless_it_has_its_own() -> None:
    import typer

    from aiwf.cli.main import hoist_global_options

    mini = typer.Typer()

    @mini.command("own")
    def own(host: str = typer.Option("", "--host")) -> None:
        """Declares --host itself."""

    @mini.command("plain")
    def plain(name: str = typer.Argument("")) -> None:
        """Declares nothing."""

    commands = getattr(typer.main.get_command(mini), "commands", {})
    assert hoist_global_options(["plain", "x", "--inventory", "a.py", "--host=h"], commands) == [
        "--inventory",
        "a.py",
        "--host=h",
        "plain",
        "x",
    ]
    assert hoist_global_options(["-i", "a.py", "own", "--host", "h"], commands) == [
        "-i",
        "a.py",
        "own",
        "--host",
        "h",
    ]
    assert hoist_global_options(["plain", "--", "--inventory"], commands) == [
        "plain",
        "--",
        "--inventory",
    ]
