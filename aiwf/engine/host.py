"""What ``aiwf up`` prepares on the host before any container starts.

Folders the containers mount, the generated secrets (0600 in a 0700 folder, written atomically,
never printed but for the first user's password, once), the Plane API key, the self-signed
certificate and the host tmux server that lets sessions outlive the tmux-sessions container.
Each function returns short notes for the user; none of them logs a secret.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from aiwf.config import StackConfig
from aiwf.errors import AiwfError
from aiwf.files import write_atomic
from aiwf.paths import services_dir
from aiwf.stack import GENERATED_SECRETS, acme_webroot, rendered_dir, secrets_dir

#: How the first user's password is changed later (printed with the password).
RESET_PASSWORD_HINT = (
    "aiwf exec tmux-sessions -- python -m tmux_sessions.admin reset-password {user}"
)


@dataclass
class HostReport:
    """What preparing the host did: notes to show, and the first user's password when new.

    ``changed`` tells a run that changed (or failed to change) something on the host from one
    that only observed: only the latter may be replayed by a later ``up`` (:mod:`.settled`).
    """

    notes: list[str] = field(default_factory=list)
    admin_password: str | None = None
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
        paths.tmux_socket_dir: 0o700,
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
    except OSError as error:
        raise AiwfError(
            f"cannot create {error.filename}: {error.strerror}; check paths.* in the settings"
        ) from None
    if tickets_new and tickets is not None:
        _copy_example_tickets(tickets, report)
    _install_completion_command(config, report)


def _install_completion_command(config: StackConfig, report: HostReport) -> None:
    """The agents' ``/complete <summary>`` command, in the workspace their sessions start in.

    Claude Code reads project commands from ``.claude/commands/`` of its working directory; the
    shipped file writes the summary to ``$COMPLETION_FILE``, which the orchestrator watches.
    """
    shipped = services_dir() / "orchestrator" / "claude" / "commands" / "complete.md"
    if config.paths.workspace is None or not shipped.is_file():
        return
    target = config.paths.workspace / ".claude" / "commands" / "complete.md"
    content = shipped.read_bytes()
    if target.is_file() and target.read_bytes() == content:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, content)
    report.did(f"installed the /complete command as {target}")


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
            report.admin_password = value.decode()
    plane = config.services.orchestrator.plane
    key: bytes | None = None
    if plane.api_key_env:
        value_text = os.environ.get(plane.api_key_env, "").strip()
        if not value_text:
            raise AiwfError(
                f"services.orchestrator.plane.api_key_env names ${plane.api_key_env}, "
                "which is not set; export it or use api_key_file"
            )
        key = value_text.encode()
    elif plane.api_key_file:
        try:
            key = plane.api_key_file.read_bytes().strip()
        except OSError as error:
            raise AiwfError(
                f"services.orchestrator.plane.api_key_file: cannot read {plane.api_key_file}: "
                f"{error.strerror}"
            ) from None
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


def host_tmux_version() -> str | None:
    """``tmux 3.3a`` when the host has tmux, else ``None``."""
    if not shutil.which("tmux"):
        return None
    result = subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=False)
    return result.stdout.strip() or None


def tmux_socket(config: StackConfig) -> Path:
    return config.paths.tmux_socket_dir / "default"


def host_tmux_command(socket: Path) -> list[str]:
    """Start a tmux server on ``socket`` that stays up with no sessions (returned, not run)."""
    return ["tmux", "-S", str(socket), "start-server", ";", "set-option", "-g", "exit-empty", "off"]


def ensure_host_tmux(config: StackConfig, image_tmux: str | None, report: HostReport) -> None:
    """Run the sessions' tmux server on the host when its tmux matches the image's.

    Then the container is only a tmux client and sessions live on when it is recreated; otherwise
    the server runs inside the container and sessions live as long as it does.
    """
    host = host_tmux_version()
    if host is None or image_tmux is None or host != image_tmux:
        report.notes.append(
            f"host tmux ({host or 'none'}) differs from the image's ({image_tmux or 'unknown'}): "
            "tmux sessions live as long as the tmux-sessions container"
        )
        return
    socket = tmux_socket(config)
    probe = subprocess.run(
        ["tmux", "-S", str(socket), "list-sessions"], capture_output=True, check=False
    )
    if probe.returncode == 0 or b"no sessions" in probe.stderr:
        return  # a server answers on the socket already
    started = subprocess.run(host_tmux_command(socket), capture_output=True, text=True, check=False)
    if started.returncode != 0:
        report.did(f"could not start the host tmux server: {started.stderr.strip()}")
        return
    report.did(f"started the host tmux server on {socket}; sessions outlive containers")


def prepare_host(config: StackConfig) -> HostReport:
    """Folders, secrets and certificate: everything the containers mount must exist first."""
    report = HostReport()
    ensure_directories(config, report)
    ensure_secrets(config, report)
    ensure_certificate(config, report)
    return report
