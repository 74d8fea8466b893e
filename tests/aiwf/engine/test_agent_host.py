"""The agent's parts that ``aiwf up`` prepares on the host, on real files: its home, its key,
the folders it writes, and the list of running sessions that guards the sandbox."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiwf.config import StackConfig, validate
from aiwf.engine.agent import (
    API_KEY_SECRET,
    COMPLETE_SKILL,
    FAILURE_HOOK,
    ensure_agent_key,
    ensure_host_tmux,
    platform_package,
    prepare_agent_home,
)
from aiwf.engine.host import HostReport, ensure_directories
from aiwf.engine.sandbox import RunningSession, parse_sessions
from aiwf.errors import AiwfError
from aiwf.stack import (
    agent_command,
    agent_home,
    claude_code_dir,
    desired_services,
    repository_key_path,
    secrets_dir,
    tmux_socket,
    tmux_socket_dir,
)


def _with(config: StackConfig, **agent: object) -> StackConfig:
    data = config.model_dump(mode="json")
    data["agent"] = {**data["agent"], **agent}
    return validate(data)


def _owner(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_uid, status.st_gid, status.st_mode & 0o777


def test_home_is_prepared_so_no_dialog_blocks_the_agent(
    config: StackConfig, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_text("sk-ant-test-key\n")
    config = _with(config, api_key_file=str(key), base_url="http://gateway.internal:8080")
    report = HostReport()
    ensure_directories(config, report)
    prepare_agent_home(config, report)
    home = Path(agent_home(config))
    state = json.loads((home / ".claude.json").read_text())
    assert state["hasCompletedOnboarding"] is True
    assert state["projects"][str(config.paths.workspace)]["hasTrustDialogAccepted"] is True
    settings = json.loads((home / ".claude" / "settings.json").read_text())
    assert settings["apiKeyHelper"] == f"cat /run/secrets/{API_KEY_SECRET}"
    assert settings["env"]["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert settings["env"]["ANTHROPIC_BASE_URL"] == "http://gateway.internal:8080"
    assert COMPLETE_SKILL in settings["permissions"]["allow"]
    assert str(config.paths.completion_dir) in settings["permissions"]["additionalDirectories"]
    hook = settings["hooks"]["StopFailure"][0]["hooks"][0]
    assert hook == {"type": "command", "command": FAILURE_HOOK}
    assert "COMPLETION_FILE" in (home / ".claude" / "commands" / "complete.md").read_text()
    agent = (config.agent.uid, config.agent.gid)
    assert _owner(home) == (*agent, 0o700)
    for name in (".claude.json", ".claude/settings.json", ".claude/commands/complete.md"):
        assert _owner(home / name) == (*agent, 0o600), name
    # The folders the agent writes are its own; the socket folder only it may enter.
    assert _owner(Path(tmux_socket_dir(config))) == (*agent, 0o700)
    assert config.paths.workspace is not None and config.paths.completion_dir is not None
    assert _owner(config.paths.workspace)[:2] == agent
    assert _owner(config.paths.completion_dir)[:2] == agent
    # A second run finds nothing to do.
    again = HostReport()
    prepare_agent_home(config, again)
    assert again.notes == [] and not again.changed


def test_existing_settings_are_merged_never_clobbered(config: StackConfig) -> None:
    home = Path(agent_home(config))
    (home / ".claude").mkdir(parents=True)
    (home / ".claude.json").write_text(
        json.dumps({"theme": "dark", "projects": {"/elsewhere": {"allowedTools": ["Bash"]}}})
    )
    (home / ".claude" / "settings.json").write_text(
        json.dumps(
            {
                "model": "opus",
                "env": {"MY_VAR": "1"},
                "permissions": {"allow": ["Bash(npm test)"]},
                "hooks": {"StopFailure": [{"hooks": [{"type": "command", "command": "mine"}]}]},
            }
        )
    )
    ensure_directories(config, HostReport())
    prepare_agent_home(config, HostReport())
    state = json.loads((home / ".claude.json").read_text())
    assert state["theme"] == "dark"
    assert state["projects"]["/elsewhere"] == {"allowedTools": ["Bash"]}
    assert state["hasCompletedOnboarding"] is True
    settings = json.loads((home / ".claude" / "settings.json").read_text())
    assert settings["model"] == "opus"
    assert settings["env"]["MY_VAR"] == "1"
    assert settings["permissions"]["allow"] == ["Bash(npm test)", COMPLETE_SKILL]
    commands = [h["hooks"][0]["command"] for h in settings["hooks"]["StopFailure"]]
    assert commands == ["mine", FAILURE_HOOK]
    # No key configured: no key helper is written.
    assert "apiKeyHelper" not in settings


def test_a_broken_settings_file_is_named_and_left_alone(config: StackConfig) -> None:
    home = Path(agent_home(config))
    home.mkdir(parents=True)
    (home / ".claude.json").write_text("{not json")
    with pytest.raises(AiwfError, match=r"\.claude\.json is not valid JSON.*fix or remove it"):
        prepare_agent_home(config, HostReport())
    assert (home / ".claude.json").read_text() == "{not json"


def test_the_key_is_a_secret_only_the_agent_reads(
    config: StackConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIWF_TEST_AGENT_KEY", "sk-ant-from-env")
    config = _with(config, api_key_env="AIWF_TEST_AGENT_KEY")
    ensure_directories(config, HostReport())
    report = HostReport()
    ensure_agent_key(config, report)
    stored = Path(secrets_dir(config)) / API_KEY_SECRET
    assert stored.read_text() == "sk-ant-from-env"
    assert _owner(stored) == (config.agent.uid, config.agent.gid, 0o600)
    assert not any("sk-ant" in note for note in report.notes)
    # The key is gone from the secrets once no key is configured.
    ensure_agent_key(_with(config, api_key_env=None), HostReport())
    assert not stored.exists()


def test_a_missing_or_empty_key_is_refused_before_anything_is_stored(
    config: StackConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIWF_TEST_AGENT_KEY", raising=False)
    ensure_directories(config, HostReport())
    with pytest.raises(AiwfError, match=r"agent\.api_key_env names \$AIWF_TEST_AGENT_KEY"):
        ensure_agent_key(_with(config, api_key_env="AIWF_TEST_AGENT_KEY"), HostReport())
    empty = tmp_path / "empty-key"
    empty.write_text("\n")
    with pytest.raises(AiwfError, match=r"agent\.api_key_file: .*empty-key is empty"):
        ensure_agent_key(_with(config, api_key_file=str(empty)), HostReport())
    assert not (Path(secrets_dir(config)) / API_KEY_SECRET).exists()


def test_settings_name_what_is_wrong_with_the_agent() -> None:
    with pytest.raises(AiwfError, match=r"agent\.uid: .*greater than or equal to 1"):
        validate({"agent": {"uid": 0}})
    with pytest.raises(AiwfError, match=r"agent\.claude_code_version"):
        validate({"agent": {"claude_code_version": "latest"}})
    with pytest.raises(AiwfError, match=r"agent\.api_key_env, agent\.api_key_file: both set"):
        validate({"agent": {"api_key_env": "K", "api_key_file": "/k"}})
    assert validate({}).agent.credential == "none"
    assert validate({"agent": {"credentials_file": "/c.json"}}).agent.credential == "login"
    host = validate({"agent": {"runtime": "host"}})
    assert "sandbox" not in host.enabled_services()


def test_the_platform_package_follows_the_machine() -> None:
    assert platform_package("x86_64") == "@anthropic-ai/claude-code-linux-x64"
    assert platform_package("aarch64") == "@anthropic-ai/claude-code-linux-arm64"
    with pytest.raises(AiwfError, match="no Linux package"):
        platform_package("mips")


def test_only_live_sessions_count_as_running() -> None:
    listing = "claude-EX-1-1-2026\tEX-1\t0\nshell\t\t0\nended\tEX-2\t1\n"
    assert parse_sessions(listing) == [
        RunningSession("claude-EX-1-1-2026", "EX-1"),
        RunningSession("shell", ""),
    ]
    assert str(RunningSession("claude-EX-1-1", "EX-1")) == "claude-EX-1-1 (ticket EX-1)"


@pytest.fixture
def host_runtime(config: StackConfig) -> Iterator[StackConfig]:
    """``agent.runtime: host`` with a uid and user made for this test, removed afterwards."""
    uid = 23000 + secrets.randbelow(1000)
    name = f"aiwft{secrets.token_hex(3)}"
    # The agent's user must reach its folders: pytest's own temp folder is root's alone.
    root = Path(tempfile.mkdtemp(prefix="aiwf-host-runtime-"))
    root.chmod(0o755)
    data = config.model_dump(mode="json")
    data["paths"] = {"data_dir": str(root / "data"), "certs_dir": str(root / "certs")}
    data["agent"] = {**data["agent"], "runtime": "host", "uid": uid, "gid": uid, "user": name}
    host = validate(data)
    try:
        yield host
    finally:
        subprocess.run(["tmux", "-S", str(tmux_socket(host)), "kill-server"], capture_output=True)
        # The agent's processes (its tmux server, an agent left at its prompt) end with it.
        subprocess.run(["pkill", "-KILL", "-u", str(uid)], capture_output=True)
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_the_host_runtime_runs_its_tmux_server_as_the_agent_never_root(
    host_runtime: StackConfig,
) -> None:
    config = host_runtime
    report = HostReport()
    ensure_directories(config, report)
    ensure_host_tmux(config, report)
    assert any(f"created the agent's user {config.agent.user}" in n for n in report.notes)
    socket = str(tmux_socket(config))
    pid = subprocess.run(
        ["tmux", "-S", socket, "display-message", "-p", "#{pid}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {str(config.agent.uid)}
    # A session of that server (what a web terminal or an agent gets) is the agent, on the host.
    marker = Path(str(config.paths.workspace)) / "whoami"
    subprocess.run(["tmux", "-S", socket, "new-session", "-d", f"id -u > {marker}"], check=True)
    deadline = time.monotonic() + 20
    while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.read_text().strip() == str(config.agent.uid)
    # A second run keeps the running server (and its sessions).
    again = HostReport()
    ensure_host_tmux(config, again)
    assert again.notes == []
    assert (
        subprocess.run(
            ["tmux", "-S", socket, "display-message", "-p", "#{pid}"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        == pid
    )


def test_the_host_runtime_names_the_pinned_binary_by_its_path(host_runtime: StackConfig) -> None:
    command = agent_command(host_runtime)
    assert command.startswith(f"{claude_code_dir(host_runtime)}/claude --permission-mode ")
    assert agent_command(validate({})) == "claude --permission-mode acceptEdits {prompt}"


def test_the_repository_reaches_the_orchestrator_and_the_sandbox(
    config: StackConfig, tmp_path: Path
) -> None:
    key = tmp_path / "deploy_key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    data = config.model_dump(mode="json")
    data["repository"] = {
        "url": "/srv/git/web.git",
        "base_branch": "trunk",
        "ssh_key_file": str(key),
        "projects": {"API": {"url": "file:///srv/git/api.git"}},
    }
    configured = validate(data)
    specs = {spec.service: spec for spec in desired_services(configured)}
    settings = json.loads(specs["orchestrator"].environment["ORCHESTRATOR_REPOSITORY"])
    assert settings["url"] == "/srv/git/web.git" and settings["base_branch"] == "trunk"
    assert settings["branch_template"] == "aiwf/{identifier}"
    assert settings["ssh_key"] == str(repository_key_path(configured))
    assert settings["projects"]["API"]["url"] == "file:///srv/git/api.git"
    mounted = {m.target: m.read_only for m in specs["sandbox"].mounts}
    assert mounted["/srv/git/web.git"] is True and mounted["/srv/git/api.git"] is True
    # Without a repository the orchestrator gets no setting at all.
    assert "ORCHESTRATOR_REPOSITORY" not in {
        k for s in desired_services(config) for k in s.environment
    }
    # The deploy key is the agent's own, 0600, in its home.
    ensure_directories(configured, HostReport())
    prepare_agent_home(configured, HostReport())
    gitconfig = Path(agent_home(configured)) / ".gitconfig"
    trusted = subprocess.run(
        ["git", "config", "--file", str(gitconfig), "--get-all", "safe.directory"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert trusted == ["/srv/git/web.git", "/srv/git/api.git"]  # local repositories only
    installed = Path(repository_key_path(configured))
    assert installed.read_text() == key.read_text()
    assert _owner(installed) == (configured.agent.uid, configured.agent.gid, 0o600)
    assert _owner(installed.parent)[2] == 0o700
    with pytest.raises(AiwfError, match=r"repository\.branch_template: .* must contain"):
        validate({"repository": {"url": "/r.git", "branch_template": "fixed"}})
    with pytest.raises(AiwfError, match=r"repository\.url: 'r\.git' is not a git URL"):
        validate({"repository": {"url": "r.git"}})
