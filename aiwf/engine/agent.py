"""What ``aiwf up`` prepares for the coding agent: the pinned Claude Code, its home and its key.

Claude Code is the npm registry's platform package of ``@anthropic-ai/claude-code`` (one native
binary). ``npm pack`` fetches it on the host, checking the registry's integrity hash; it is
unpacked into ``<data_dir>/agent/claude-code/<version>/claude`` and must answer ``--version``
with that version before it is moved into place. The sandbox mounts the folder read-only, so no
image build needs the network and an upgrade is a settings change that ``up`` converges.

The agent's home is prepared so nothing blocks an agent: ``~/.claude.json`` with onboarding done
and the workspace trusted, ``~/.claude/settings.json`` with the key helper, the non-essential
traffic off, the ``/complete`` command allowed and the completion folder writable, and the
``/complete`` command itself. Both JSON files are merged into what is there, never replaced.
Everything is owned by the agent's uid; the key is a 0600 secret only that uid can read.

Example::

    report = HostReport()
    ensure_claude_code(config, report)   # 'installed Claude Code 2.1.328 in /var/lib/...'
    prepare_agent_home(config, report)
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiwf.config import StackConfig
from aiwf.errors import AiwfError
from aiwf.files import write_atomic
from aiwf.paths import services_dir
from aiwf.stack import (
    agent_home,
    agent_key_path,
    claude_code_dir,
    local_repositories,
    repository_key_path,
    secrets_dir,
    tmux_socket,
)

if TYPE_CHECKING:
    from aiwf.engine.host import HostReport

NPM_PACKAGE = "@anthropic-ai/claude-code"
#: The secret holding the agent's Anthropic API key (under ``<data_dir>/secrets``).
API_KEY_SECRET = "anthropic_api_key"
#: The ``/complete`` command permission: the agent may run it without a prompt.
COMPLETE_SKILL = "Skill(complete)"
#: Written by Claude Code's ``StopFailure`` hook when a turn ends on an API error (a wrong key,
#: an exhausted quota): ``failure-<ticket id>.json`` beside the completion file, which the
#: orchestrator shows on the ticket.
FAILURE_HOOK = (
    'if [ -n "$COMPLETION_FILE" ] && [ -n "$TICKET_ID" ]; then '
    'd=$(dirname "$COMPLETION_FILE"); '
    'cat > "$d/.failure-$TICKET_ID.tmp" && mv "$d/.failure-$TICKET_ID.tmp" '
    '"$d/failure-$TICKET_ID.json"; else cat > /dev/null; fi'
)
#: Read by Claude Code at start (before its settings): each ticket's worktree is a git root of
#: its own, which it would otherwise ask a person to trust; agents run where aiwf put them,
#: behind the stack's approval.
TRUSTED = "CLAUDE_CODE_SANDBOXED"
_ARCHES = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


def platform_package(machine: str | None = None) -> str:
    """The npm package holding this machine's Claude Code binary.

    >>> platform_package("x86_64")
    '@anthropic-ai/claude-code-linux-x64'
    """
    machine = machine or platform.machine()
    arch = _ARCHES.get(machine.lower())
    if arch is None:
        raise AiwfError(f"Claude Code has no Linux package for this machine ({machine})")
    return f"{NPM_PACKAGE}-linux-{arch}"


def _claude_version(binary: Path) -> str:
    """What ``claude --version`` prints, e.g. ``2.1.328 (Claude Code)``."""
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot run: {error}"
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return lines[0] if lines else ""


def fetch_claude_code(version: str) -> Path:
    """The verified binary of ``version`` in aiwf's cache, fetched with ``npm pack`` when new.

    The cache (``~/.cache/aiwf/claude-code/<version>/claude``) serves every stack on this host,
    so a second stack or a reinstall does not download the ~170 MB package again.
    """
    from aiwf.engine.build import cache_dir, node_environment

    folder = cache_dir() / "claude-code" / version
    if (folder / "claude").is_file():
        return folder / "claude"
    package = f"{platform_package()}@{version}"
    environment = node_environment()
    npm = shutil.which("npm", path=environment.get("PATH"))
    if npm is None:
        raise AiwfError(
            f"agent.claude_code_version: installing Claude Code {version} needs npm on this "
            "host; run `make node` (or install nodejs and npm), then aiwf up again"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=folder.parent))
    try:
        done = subprocess.run(
            [npm, "pack", "--silent", "--pack-destination", str(staging), package],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )
        tarballs = sorted(staging.glob("*.tgz"))
        if done.returncode != 0 or not tarballs:
            reason = (done.stderr.strip().splitlines() or ["no package"])[-1]
            raise AiwfError(
                f"agent.claude_code_version: npm could not fetch {package}: {reason}; "
                "check the version exists (npm view @anthropic-ai/claude-code versions)"
            )
        binary = staging / "claude"
        with tarfile.open(tarballs[0]) as archive:
            source = archive.extractfile(archive.getmember("package/claude"))
            if source is None:
                raise AiwfError(f"{package}: its package/claude is not a file")
            with source, binary.open("wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
        binary.chmod(0o755)
        tarballs[0].unlink()
        answered = _claude_version(binary)
        if not answered.startswith(version):
            raise AiwfError(
                f"agent.claude_code_version: the fetched {package} answers "
                f"'{answered}' to --version, not {version}"
            )
        staging.chmod(0o755)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / "claude"


def ensure_claude_code(config: StackConfig, report: HostReport) -> None:
    """The pinned Claude Code in the stack's versioned folder, which the sandbox mounts."""
    version = config.agent.claude_code_version
    folder = Path(claude_code_dir(config))
    if (folder / "claude").is_file():
        return
    cached = fetch_claude_code(version)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=folder.parent))
    try:
        try:
            os.link(cached, staging / "claude")
        except OSError:  # another file system: a copy
            shutil.copy2(cached, staging / "claude")
        staging.chmod(0o755)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.did(f"installed Claude Code {version} in {folder}")


def read_key(env_name: str | None, key_file: Path | None, field: str) -> bytes | None:
    """A key from the variable ``env_name`` or from ``key_file``; None when neither is set.

    ``field`` names the settings (``agent``) in the error, e.g. ``agent.api_key_env names
    $ANTHROPIC_API_KEY, which is not set``. An empty key is refused, never stored.
    """
    if env_name:
        value = os.environ.get(env_name, "").strip()
        if not value:
            raise AiwfError(
                f"{field}.api_key_env names ${env_name}, which is not set or empty; export it "
                "or use api_key_file"
            )
        return value.encode()
    if key_file is None:
        return None
    try:
        value_bytes = key_file.read_bytes().strip()
    except OSError as error:
        raise AiwfError(f"{field}.api_key_file: cannot read {key_file}: {error.strerror}") from None
    if not value_bytes:
        raise AiwfError(f"{field}.api_key_file: {key_file} is empty; put the key in it")
    return value_bytes


def own(path: Path, config: StackConfig, mode: int | None = None) -> bool:
    """Give ``path`` to the agent's uid and gid (and ``mode``); True when anything changed."""
    status = path.stat()
    agent = config.agent
    changed = False
    if (status.st_uid, status.st_gid) != (agent.uid, agent.gid):
        os.chown(path, agent.uid, agent.gid)
        changed = True
    if mode is not None and status.st_mode & 0o7777 != mode:
        path.chmod(mode)
        changed = True
    return changed


def agent_key_file(config: StackConfig) -> Path:
    """The host file of the agent's key: a secret the sandbox mounts, or (``runtime: host``)
    the file the agent reads directly (see :func:`aiwf.stack.agent_key_path`)."""
    if config.agent.runtime == "sandbox":
        return Path(secrets_dir(config)) / API_KEY_SECRET
    return Path(agent_key_path(config))


def ensure_agent_key(config: StackConfig, report: HostReport) -> None:
    """Store the agent's API key as a 0600 file owned by the agent's uid (and nowhere else)."""
    agent = config.agent
    key = read_key(agent.api_key_env, agent.api_key_file, "agent")
    path = agent_key_file(config)
    for other in (Path(secrets_dir(config)) / API_KEY_SECRET, Path(agent_key_path(config))):
        if other != path and other.is_file():
            other.unlink()  # left by the other runtime
    if key is None:
        if path.exists():
            path.unlink()
            report.did("removed the agent's API key (none is configured)")
        return
    if not path.is_file() or path.read_bytes() != key:
        write_atomic(path, key, 0o600)
        report.did("stored the agent's API key")
    own(path, config, 0o600)


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text() or "{}")
    except (ValueError, OSError) as error:
        raise AiwfError(
            f"{path} is not valid JSON ({error}); fix or remove it, then aiwf up again"
        ) from None
    if not isinstance(loaded, dict):
        raise AiwfError(f"{path} holds no JSON object; fix or remove it, then aiwf up again")
    return loaded


def merge_json(
    path: Path,
    update: Callable[[dict[str, Any]], None],
    config: StackConfig,
    report: HostReport,
) -> None:
    """Apply ``update`` to the JSON object in ``path`` and write it back (0600) if it changed."""
    current = _load_json(path)
    wanted = json.loads(json.dumps(current))
    update(wanted)
    if wanted != current or not path.is_file():
        write_atomic(path, (json.dumps(wanted, indent=2) + "\n").encode(), 0o600)
        report.did(f"prepared {path}")
    own(path, config, 0o600)


def _add_unique(items: list[Any], *wanted: Any) -> list[Any]:
    return [*items, *(item for item in wanted if item not in items)]


def update_claude_json(config: StackConfig) -> Callable[[dict[str, Any]], None]:
    """Onboarding done and the workspace trusted, so no first-run dialog waits for a person."""

    def update(data: dict[str, Any]) -> None:
        data["hasCompletedOnboarding"] = True
        data["lastOnboardingVersion"] = config.agent.claude_code_version
        projects = data.setdefault("projects", {})
        project = projects.setdefault(str(config.paths.workspace), {})
        project["hasTrustDialogAccepted"] = True
        project["hasCompletedProjectOnboarding"] = True
        if config.agent.permission_mode == "bypassPermissions":
            data["bypassPermissionsModeAccepted"] = True

    return update


def update_settings(config: StackConfig) -> Callable[[dict[str, Any]], None]:
    """The agent's user settings: key helper, environment, permissions and the failure hook."""
    agent = config.agent
    helper = f"cat {agent_key_path(config)}"

    def update(data: dict[str, Any]) -> None:
        env = data.setdefault("env", {})
        env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
        if agent.base_url:
            env["ANTHROPIC_BASE_URL"] = agent.base_url
        else:
            env.pop("ANTHROPIC_BASE_URL", None)
        env.update(agent.environment)
        if agent.credential == "api_key":
            data["apiKeyHelper"] = helper
        elif str(data.get("apiKeyHelper", "")).endswith(f"/{API_KEY_SECRET}"):
            del data["apiKeyHelper"]
        permissions = data.setdefault("permissions", {})
        permissions["allow"] = _add_unique(permissions.get("allow", []), COMPLETE_SKILL)
        permissions["additionalDirectories"] = _add_unique(
            permissions.get("additionalDirectories", []), str(config.paths.completion_dir)
        )
        if agent.permission_mode == "bypassPermissions":
            data["skipDangerousModePermissionPrompt"] = True
        hooks = data.setdefault("hooks", {})
        ours = {"hooks": [{"type": "command", "command": FAILURE_HOOK}]}
        hooks["StopFailure"] = _add_unique(hooks.get("StopFailure", []), ours)

    return update


def _install_file(source: Path, target: Path, config: StackConfig, report: HostReport) -> None:
    content = source.read_bytes()
    if not target.is_file() or target.read_bytes() != content:
        write_atomic(target, content, 0o600)
        report.did(f"installed {target}")
    own(target, config, 0o600)


def _trust_local_repositories(config: StackConfig, gitconfig: Path, report: HostReport) -> None:
    """Let the agent's git read the repositories given as host paths (owned by someone else,
    which git refuses as "dubious ownership" unless listed in ``safe.directory``)."""
    paths = local_repositories(config)
    if not paths:
        return
    listed = subprocess.run(
        ["git", "config", "--file", str(gitconfig), "--get-all", "safe.directory"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    for path in paths:
        if path not in listed:
            add = ["git", "config", "--file", str(gitconfig), "--add", "safe.directory", path]
            _run_or_fail(add, "git is needed on this host for a repository given as a path")
            report.did(f"the agent's git trusts the repository {path}")
    own(gitconfig, config, 0o600)


def prepare_agent_home(config: StackConfig, report: HostReport) -> None:
    """The agent's home: JSON settings merged, ``/complete`` installed, a login copied."""
    home = Path(agent_home(config))
    claude_dir = home / ".claude"
    commands = claude_dir / "commands"
    for folder in (home, claude_dir, commands):
        folder.mkdir(parents=True, exist_ok=True)
        own(folder, config, 0o700)
    merge_json(home / ".claude.json", update_claude_json(config), config, report)
    merge_json(claude_dir / "settings.json", update_settings(config), config, report)
    shipped = services_dir() / "orchestrator" / "claude" / "commands" / "complete.md"
    _install_file(shipped, commands / "complete.md", config, report)
    _trust_local_repositories(config, home / ".gitconfig", report)
    deploy_key = config.repository.ssh_key_file
    if deploy_key is not None:
        if not deploy_key.is_file():
            raise AiwfError(f"repository.ssh_key_file: {deploy_key} does not exist")
        ssh = home / ".ssh"
        ssh.mkdir(exist_ok=True)
        own(ssh, config, 0o700)
        _install_file(deploy_key, Path(repository_key_path(config)), config, report)
    login = config.agent.credentials_file
    if login is not None:
        if not login.is_file():
            raise AiwfError(
                f"agent.credentials_file: {login} does not exist; give the path of a Claude "
                "login's .credentials.json (after `claude /login`)"
            )
        _install_file(login, claude_dir / ".credentials.json", config, report)


def agent_user_name(config: StackConfig) -> str:
    """The host's name for ``agent.uid``: an existing user's, else ``agent.user`` once made."""
    import pwd

    try:
        return pwd.getpwuid(config.agent.uid).pw_name
    except KeyError:
        return config.agent.user


def ensure_host_user(config: StackConfig, report: HostReport) -> str:
    """The agent's user on the host (``runtime: host``), made as a system user when missing."""
    import grp

    agent = config.agent
    name = agent_user_name(config)
    try:
        grp.getgrgid(agent.gid)
    except KeyError:
        _run_or_fail(["groupadd", "--system", "--gid", str(agent.gid), agent.user], _USER_HINT)
    if name == agent.user:
        import pwd

        try:
            pwd.getpwnam(name)
        except KeyError:
            home = str(agent_home(config))
            _run_or_fail(
                [
                    "useradd",
                    "--system",
                    "--uid",
                    str(agent.uid),
                    "--gid",
                    str(agent.gid),
                    "--no-create-home",
                    "--home-dir",
                    home,
                    "--shell",
                    "/bin/bash",
                    name,
                ],
                _USER_HINT,
            )
            report.did(f"created the agent's user {name} (uid {agent.uid}) on this host")
    return name


_USER_HINT = "agent.runtime 'host' needs root to create the agent's user, or create it yourself"


def _run_or_fail(command: list[str], hint: str) -> None:
    """Run ``command``; AiwfError naming it, what it said and ``hint`` when it fails."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise AiwfError(f"cannot run {command[0]} ({error.strerror}); {hint}") from None
    if done.returncode != 0:
        said = done.stderr.strip() or f"exit status {done.returncode}"
        raise AiwfError(f"{' '.join(command[:3])} failed: {said}; {hint}")


def host_tmux_command(config: StackConfig, user: str) -> list[str]:
    """Start the agents' tmux server as ``user`` with a clean environment (returned, not run).

    ``runuser`` drops root for good before tmux runs; the server then lives on its own.
    """
    home = str(agent_home(config))
    conf = services_dir() / "sandbox" / "tmux.conf"
    path = f"{claude_code_dir(config)}:/usr/local/bin:/usr/bin:/bin"
    return [
        "runuser",
        "-u",
        user,
        "--",
        "env",
        "-i",
        f"HOME={home}",
        f"USER={user}",
        f"LOGNAME={user}",
        "SHELL=/bin/bash",
        f"PATH={path}",
        "LANG=C.UTF-8",
        "TERM=xterm-256color",
        f"{TRUSTED}=1",
        "tmux",
        "-S",
        str(tmux_socket(config)),
        "-f",
        str(conf),
        "start-server",
        ";",
        "set-option",
        "-g",
        "exit-empty",
        "off",
    ]


def ensure_host_tmux(config: StackConfig, report: HostReport) -> None:
    """The agents' tmux server on this host, run as the agent's user (``runtime: host``).

    One already answering on the socket is kept (its sessions live on) when the agent's uid
    owns it; one owned by anyone else is refused.
    """
    socket = Path(tmux_socket(config))
    user = ensure_host_user(config, report)
    if socket.is_socket():
        probe = subprocess.run(
            ["tmux", "-S", str(socket), "list-sessions"], capture_output=True, check=False
        )
        if probe.returncode == 0 or b"no sessions" in probe.stderr:
            owner = socket.stat().st_uid
            if owner != config.agent.uid:
                raise AiwfError(
                    f"the tmux server on {socket} belongs to uid {owner}, not the agent's "
                    f"{config.agent.uid}; end it (tmux -S {socket} kill-server), then aiwf up"
                )
            return
    started = subprocess.run(
        host_tmux_command(config, user), capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        raise AiwfError(
            f"could not start the agents' tmux server as {user}: {started.stderr.strip()}; "
            f"{user} must be able to reach {socket.parent} (every folder above it executable)"
        )
    report.did(f"started the agents' tmux server on {socket} as {user}")
