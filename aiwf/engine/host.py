"""What ``aiwf up`` prepares on the host before any container starts.

Folders the containers mount, the generated secrets (0600 in a 0700 folder, written atomically,
never printed but for the first user's password, once), the Plane API key, the self-signed
certificate, and for the agent (:mod:`aiwf.engine.agent`) its Claude Code, home and key.
Each function returns short notes for the user; none of them logs a secret.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from aiwf.config import StackConfig
from aiwf.engine.agent import (
    ensure_agent_key,
    ensure_claude_code,
    ensure_host_tmux,
    own,
    prepare_agent_home,
    read_key,
)
from aiwf.errors import AiwfError
from aiwf.files import write_atomic
from aiwf.paths import services_dir
from aiwf.stack import (
    AGENT_OWNED_SECRETS,
    GENERATED_SECRETS,
    acme_webroot,
    rendered_dir,
    secrets_dir,
    tmux_socket_dir,
)

#: How the first user's password is changed later (printed with the password).
RESET_PASSWORD_HINT = (
    "aiwf exec tmux-sessions -- python -m tmux_sessions.admin reset-password {user}"
)


@dataclass
class HostReport:
    """What preparing the host did: notes to show, and the first user's password file when new
    (its path, never the password: that is read from the 0600 file by who may).

    ``changed`` tells a run that changed (or failed to change) something on the host from one
    that only observed: only the latter may be replayed by a later ``up`` (:mod:`.settled`).
    """

    notes: list[str] = field(default_factory=list)
    admin_password_file: Path | None = None
    changed: bool = False

    def did(self, note: str) -> None:
        """Note a change made on the host (or one that failed and must be tried again)."""
        self.notes.append(note)
        self.changed = True


def write_private(path: Path, data: bytes) -> None:
    """A secret file: written atomically with mode 0600 (never readable by others, even briefly)."""
    write_atomic(path, data, 0o600)


def host_directories(config: StackConfig) -> dict[Path, int | None]:
    """Every host folder the stack needs -> the mode it must have (``None``: leave as made)."""
    paths = config.paths
    folders: dict[Path, int | None] = {
        paths.data_dir: None,
        Path(rendered_dir(config)): None,
        Path(secrets_dir(config)): 0o700,
        Path(acme_webroot(config)): None,
        paths.data_dir / "logs" / "nginx": None,
        paths.data_dir / "state": None,
    }
    for optional in (
        paths.home,
        paths.workspace,
        paths.completion_dir,
        paths.tickets_dir,
        paths.certs_dir,
        paths.backup_dir,
    ):
        if optional is not None:
            folders.setdefault(optional, None)
    return folders


def agent_directories(config: StackConfig) -> dict[Path, int | None]:
    """Host folders the agent writes -> their mode; each is owned by the agent's uid.

    The tmux socket folder only that uid may enter (tmux's own rule for its socket).
    """
    paths = config.paths
    folders: dict[Path, int | None] = {
        paths.data_dir / "agent": 0o755,
        Path(tmux_socket_dir(config)): 0o700,
    }
    for shared in (paths.workspace, paths.completion_dir):
        if shared is not None:
            folders[shared] = None
    return folders


def ensure_directories(config: StackConfig, report: HostReport) -> None:
    tickets = config.paths.tickets_dir
    tickets_new = tickets is not None and not tickets.exists()
    try:
        for folder, mode in host_directories(config).items():
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                report.did(f"created {folder}")
            if mode is not None and (folder.stat().st_mode & 0o777) != mode:
                folder.chmod(mode)
        for folder, mode in agent_directories(config).items():
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                report.did(f"created {folder}")
            if own(folder, config, mode):
                report.did(f"{folder} belongs to the agent's uid {config.agent.uid}")
    except OSError as error:
        raise AiwfError(
            f"cannot create {error.filename}: {error.strerror}; check paths.* in the settings"
        ) from None
    if tickets_new and tickets is not None:
        _copy_example_tickets(tickets, report)


def _copy_example_tickets(tickets: Path, report: HostReport) -> None:
    examples = services_dir() / "orchestrator" / "examples" / "tickets"
    if not examples.is_dir():
        return
    copied = 0
    for example in sorted(examples.iterdir()):
        if example.is_file():
            shutil.copy2(example, tickets / example.name)
            copied += 1
    if copied:
        report.did(f"copied {copied} example ticket(s) into {tickets}")


def _new_secret(name: str) -> bytes:
    if name == "admin_password":
        return secrets.token_urlsafe(15).encode()
    return secrets.token_urlsafe(48).encode()


def ensure_secrets(config: StackConfig, report: HostReport) -> None:
    """Generate the missing secrets; copy the Plane API key from its env var or file."""
    folder = Path(secrets_dir(config))
    for name in GENERATED_SECRETS:
        path = folder / name
        if path.is_file() and path.stat().st_size > 0:
            if path.stat().st_mode & 0o777 != 0o600:
                path.chmod(0o600)
                report.did(f"secret {name} was readable by others: its mode is 0600 again")
            continue
        value = _new_secret(name)
        write_private(path, value)
        report.did(f"generated secret {name}")
        if name == "admin_password":
            report.admin_password_file = path
    for name in AGENT_OWNED_SECRETS:
        if (folder / name).is_file():
            own(folder / name, config, 0o600)
    plane = config.services.orchestrator.plane
    key = read_key(plane.api_key_env, plane.api_key_file, "services.orchestrator.plane")
    if key is not None:
        path = folder / "plane_api_key"
        current = path.read_bytes() if path.is_file() else None
        if current != key:
            write_private(path, key)
            report.did("stored the Plane API key in the secrets")


def ensure_certificate(config: StackConfig, report: HostReport) -> None:
    """A self-signed certificate when none exists, so nginx always has one to start with."""
    if "nginx" not in config.enabled_services():
        return
    from aiwf.certs import ensure_self_signed

    if ensure_self_signed(config):
        report.did(f"created a self-signed certificate in {config.paths.certs_dir}")


def prepare_host(config: StackConfig) -> HostReport:
    """Folders, secrets, certificate and the agent's parts: what the containers mount."""
    report = HostReport()
    ensure_directories(config, report)
    ensure_secrets(config, report)
    ensure_agent_key(config, report)
    ensure_certificate(config, report)
    ensure_claude_code(config, report)
    prepare_agent_home(config, report)
    if config.agent.runtime == "host":
        ensure_host_tmux(config, report)
    return report
