"""The stack's settings: one tree of validated pydantic models.

Every part of aiwf (templates, engine, operations, the pyinfra deploy) reads the one
:class:`StackConfig` that :func:`load_config` returns. Unknown keys and bad values fail before
anything runs, and every problem names its field path and the value given::

    >>> load_config(overrides={"services": {"orchestrator": {"port": 70000}}})
    Traceback (most recent call last):
    aiwf.errors.ConfigError: 1 configuration problem: services.orchestrator.port: 70000 is not ...

Settings live with the pyinfra inventory (see :mod:`aiwf.inventory`); with nothing configured the
defaults give a working local stack: self-signed certificates, the local ticket folder, speech off.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from aiwf.errors import ConfigError
from aiwf.paths import project_root

#: The services of the stack, in dependency order (each starts after those before it). The
#: ``sandbox`` is where agents and web terminals run; the five others serve the web stack.
SERVICE_NAMES: tuple[str, ...] = (
    "sandbox",
    "tmux-sessions",
    "orchestrator",
    "whisper",
    "dashboard",
    "nginx",
)

_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SIZE = re.compile(r"^[1-9][0-9]*[kmg]?$", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _valid_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a valid port (1-65535)")
    return value


def _absolute_path(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError(
            f"'{value}' is not an absolute path; write it from the root, e.g. /srv/{value}"
        )
    return value


def _domain_name(value: str) -> str:
    name = value.strip().lower().rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise ValueError(f"'{value}' is not a valid domain name")
    return name


def _size(value: str) -> str:
    if not _SIZE.match(value):
        raise ValueError(
            f"'{value}' is not a size; write a number with an optional k, m or g: 512m"
        )
    return value.lower()


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"'{value}' is not an http(s) URL")
    return value.rstrip("/")


def _origin(value: str) -> str:
    if value.strip() == "*":
        raise ValueError("'*' is not allowed: the stack uses credentials; list the real origins")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(
            f"'{value}' is not an origin; write scheme://host[:port], e.g. https://ai.example.com"
        )
    return f"{parts.scheme}://{parts.netloc}"


Port = Annotated[int, AfterValidator(_valid_port)]
AbsPath = Annotated[Path, AfterValidator(_absolute_path)]
DomainName = Annotated[str, AfterValidator(_domain_name)]
Size = Annotated[str, AfterValidator(_size)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Origin = Annotated[str, AfterValidator(_origin)]


class Strict(BaseModel):
    """Base of every settings model: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class Resources(Strict):
    """Resource limits of one container; ``None`` means no limit."""

    #: CPU share the container may use (1.5 = one and a half cores).
    cpus: float | None = Field(default=None, gt=0, le=256)
    #: Memory limit of the container.
    memory: Size | None = None
    #: How many processes the container may run at once.
    pids: int | None = Field(default=None, ge=16, le=1_000_000)


def _limits(memory: str, pids: int) -> Resources:
    return Resources(memory=memory, pids=pids)


class ServiceConfig(Strict):
    """What every service has: on or off, its base image, extra environment, limits, its port."""

    #: Run this service. Whisper follows ``speech.mode`` (``local`` turns it on).
    enabled: bool = True
    #: Base image of the service's Dockerfile (the ``BASE_IMAGE`` build argument).
    base_image: str = "python:3.12-slim"
    #: Port the service listens on inside the stack's network (``None``: it serves no port).
    port: Port | None = None
    #: Extra environment variables for the container; they win over aiwf's own.
    environment: dict[str, str] = Field(default_factory=dict)
    #: CPU and memory limits.
    resources: Resources = Field(default_factory=Resources)

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"'{name}' is not a valid environment variable name")
        return value

    @field_validator("base_image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError(f"'{value}' is not an image reference, e.g. python:3.12-slim")
        return value


class NginxService(ServiceConfig):
    #: Limits (memory, processes); ``null`` lifts one.
    resources: Resources = Field(default_factory=lambda: _limits("256m", 512))
    base_image: str = "nginx:stable"
    port: Port = 443
    #: Largest speech upload nginx accepts (``/api/whisper/``).
    client_max_body_size: Size = "25m"
    #: Largest body of every other request (API JSON, terminal input); a login gets 8k.
    api_max_body_size: Size = "1m"


class DashboardService(ServiceConfig):
    #: Limits (memory, processes); ``null`` lifts one.
    resources: Resources = Field(default_factory=lambda: _limits("128m", 256))
    base_image: str = "nginx:stable"
    port: Port = 3000


class TmuxSessionsService(ServiceConfig):
    #: Limits (memory, processes); ``null`` lifts one.
    resources: Resources = Field(default_factory=lambda: _limits("512m", 1024))
    port: Port = 5001
    #: The first user, created on first ``up`` with a generated password.
    admin_user: str = Field(default="admin", pattern=r"^[A-Za-z0-9_.-]{1,32}$")


class SandboxService(ServiceConfig):
    """The container agents and web terminals run in (``agent.runtime: sandbox``).

    It holds the tmux server, so its sessions outlive every other container; it publishes no
    port and joins no stack network (see README, "Agent runtime").
    """

    #: Limits of all agents and terminals together (memory, processes).
    resources: Resources = Field(default_factory=lambda: _limits("8g", 4096))
    #: Follows ``agent.runtime`` (``sandbox`` turns it on).
    enabled: bool = True


class PlaneSettings(Strict):
    """Plane tracker settings; the API key itself comes from ``.claude.json`` or a file/env."""

    #: Plane API base URL, e.g. https://plane.example.com/api/v1 (else from ``.claude.json``).
    api_url: HttpUrl | None = None
    #: Plane workspace slug (else from ``.claude.json``).
    workspace_slug: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    #: Name of an environment variable holding the API key (read when the stack is deployed).
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: A file holding the API key (0600); copied into the stack's secrets.
    api_key_file: AbsPath | None = None
    #: Plane project identifiers to watch; all projects when empty.
    projects: list[str] = Field(default_factory=list)


class OrchestratorService(ServiceConfig):
    #: Limits (memory, processes); ``null`` lifts one.
    resources: Resources = Field(default_factory=lambda: _limits("512m", 512))
    port: Port = 5002
    #: ``auto`` uses Plane when credentials are configured, else the local ticket folder.
    ticket_source: Literal["auto", "plane", "local"] = "auto"
    #: The Plane tracker.
    plane: PlaneSettings = Field(default_factory=PlaneSettings)
    #: A ticket is picked up when it carries one of these labels.
    select_labels: list[str] = Field(default_factory=lambda: ["claude"])
    #: ... and its state is in one of these groups.
    select_state_groups: list[
        Literal["backlog", "unstarted", "started", "completed", "cancelled"]
    ] = Field(default_factory=lambda: ["backlog", "unstarted"])  # type: ignore[arg-type]
    #: How many tickets may have an agent session at the same time.
    max_active: int = Field(default=2, ge=1, le=100)
    #: An agent session running longer than this is stopped and its ticket failed.
    session_time_limit_minutes: int = Field(default=240, ge=1)
    #: How often the tracker is polled (webhooks trigger a sync in between).
    poll_interval_seconds: int = Field(default=60, ge=5, le=86400)
    #: Command started in the ticket's tmux session; the orchestrator's default when unset.
    agent_command: str | None = None


class WhisperService(ServiceConfig):
    #: Limits (memory, processes); ``null`` lifts one.
    resources: Resources = Field(default_factory=lambda: _limits("4g", 512))
    enabled: bool = False
    port: Port = 8000


class Services(Strict):
    """The services; ``tmux_sessions`` is the container ``tmux-sessions``."""

    #: Where agents and web terminals run, as an unprivileged user; see ``agent``.
    sandbox: SandboxService = Field(default_factory=SandboxService)
    #: Reverse proxy and TLS termination; the only container publishing ports.
    nginx: NginxService = Field(default_factory=NginxService)
    #: The web dashboard (static single-page app).
    dashboard: DashboardService = Field(default_factory=DashboardService)
    #: Terminal sessions over HTTP and WebSocket; also the stack's login.
    tmux_sessions: TmuxSessionsService = Field(default_factory=TmuxSessionsService)
    #: Ticket automation: picks tickets, starts agents, reports back.
    orchestrator: OrchestratorService = Field(default_factory=OrchestratorService)
    #: Speech-to-text; see ``speech``.
    whisper: WhisperService = Field(default_factory=WhisperService)

    def get(self, name: str) -> ServiceConfig:
        """The settings of service ``name`` as the engine spells it (``tmux-sessions``)."""
        value: ServiceConfig = getattr(self, name.replace("-", "_"))
        return value


class Speech(Strict):
    """Speech-to-text: off, the local whisper container, or a remote upstream nginx proxies to."""

    #: ``off``: nginx answers 503; ``local``: the whisper container; ``remote``: ``speech.url``.
    mode: Literal["off", "local", "remote"] = "off"
    #: The remote speech service (it serves ``/api/whisper/...``) when ``mode`` is ``remote``.
    url: HttpUrl | None = None
    #: A host directory holding a faster-whisper model; the embedded base model when unset.
    model_dir: AbsPath | None = None
    #: Where the local model runs.
    device: Literal["cpu", "cuda"] = "cpu"
    #: Numeric precision of the local model.
    compute_type: Literal["int8", "int8_float16", "float16", "float32"] = "int8"

    @model_validator(mode="after")
    def _url_matches_mode(self) -> Speech:
        if self.mode == "remote" and not self.url:
            raise ValueError(
                "speech.url: not set, but speech.mode is 'remote'; give the upstream URL, "
                "e.g. http://gpu-host:8000"
            )
        if self.mode != "remote" and self.url:
            raise ValueError(
                f"speech.url: set, but speech.mode is '{self.mode}'; set speech.mode: remote "
                "or remove the URL"
            )
        return self


class Ports(Strict):
    """Host ports nginx publishes (the only published ports of the stack)."""

    #: Host address the published ports bind to (127.0.0.1 keeps the stack local).
    bind: str = "0.0.0.0"
    #: Host port of plain HTTP (ACME challenges, the redirect to HTTPS).
    http: Port = 80
    #: Host port of HTTPS.
    https: Port = 443

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        if self.http == self.https:
            raise ValueError(
                f"ports.https: {self.https} is also ports.http; give them different ports"
            )
        return self


class Tls(Strict):
    #: ``self-signed`` (made by aiwf), ``letsencrypt`` (certbot) or ``files`` (your own).
    mode: Literal["self-signed", "letsencrypt", "files"] = "self-signed"
    #: For ``files``: certificate chain and key on the host.
    cert_file: AbsPath | None = None
    #: For ``files``: the private key on the host.
    key_file: AbsPath | None = None
    #: For ``letsencrypt``.
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    #: Use Let's Encrypt's staging server (untrusted certificates, generous limits).
    staging: bool = False
    #: Another ACME directory URL (a private CA, or a test server).
    acme_server: HttpUrl | None = None
    #: ``aiwf certs status`` and ``aiwf health`` warn below this many days left.
    warn_days: int = Field(default=14, ge=1, le=365)

    @model_validator(mode="after")
    def _mode_needs(self) -> Tls:
        if self.mode == "files" and not (self.cert_file and self.key_file):
            raise ValueError("tls.cert_file, tls.key_file: both required when tls.mode is 'files'")
        return self


class Retention(Strict):
    #: Backups always kept, newest first.
    keep_last: int = Field(default=7, ge=1, le=1000)
    #: Besides those, the newest backup of each of this many days.
    keep_daily: int = Field(default=7, ge=0, le=1000)
    #: ... and of each of this many weeks.
    keep_weekly: int = Field(default=4, ge=0, le=1000)


QuiescePolicy = Literal["pause", "stop", "none"]


def _default_policy() -> dict[str, QuiescePolicy]:
    return {
        "tmux-session-data": "pause",
        "plane-orchestrator-data": "pause",
        "plane-orchestrator-logs": "none",
    }


class Backup(Strict):
    #: Archive compression.
    compression: Literal["zstd", "gzip"] = "zstd"
    #: Compression level (zstd 1-19, gzip 1-9).
    level: int = Field(default=3, ge=1, le=19)
    #: Which archives survive the pruning after each backup.
    retention: Retention = Field(default_factory=Retention)
    #: How the service writing a volume is quiesced during its snapshot.
    policy: dict[str, QuiescePolicy] = Field(default_factory=_default_policy)
    #: Nightly backup time (host local time, HH:MM) for the rendered timer.
    schedule: str = Field(default="03:15", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    #: ``aiwf health`` reports a newest verified backup older than this as unhealthy.
    max_age_hours: int = Field(default=36, ge=1)


class Logrotate(Strict):
    #: How often the orchestrator's and nginx's log files are rotated.
    frequency: Literal["daily", "weekly", "monthly"] = "daily"
    #: Rotated files kept.
    rotate: int = Field(default=7, ge=1, le=365)
    #: Rotate earlier when a file grows past this size.
    max_size: Size = "100m"
    #: Compress rotated files (the newest one a rotation later).
    compress: bool = True
    #: json-file driver limits for every container's stdout/stderr.
    container_max_size: Size = "10m"
    #: json-file driver: files kept per container.
    container_max_files: int = Field(default=3, ge=1, le=100)


PermissionMode = Literal["acceptEdits", "auto", "default", "bypassPermissions", "plan"]
#: Claude Code releases are plain ``major.minor.patch`` versions on the npm registry.
_VERSION = r"^[0-9]+\.[0-9]+\.[0-9]+$"


class AgentSettings(Strict):
    """The coding agent every approved ticket gets: Claude Code, pinned, never run as root.

    With nothing set, agents run in the ``sandbox`` container as uid 1000 and approvals are
    refused until a credential is configured::

        agent: {api_key_env: ANTHROPIC_API_KEY}
    """

    #: ``sandbox``: a container with only the workspace, the completion folder and the agent's
    #: home mounted. ``host``: a tmux server on this host, run as ``agent.user`` (never root).
    runtime: Literal["sandbox", "host"] = "sandbox"
    #: The ``@anthropic-ai/claude-code`` release installed for agents (from the npm registry).
    claude_code_version: str = Field(default="2.1.328", pattern=_VERSION)
    #: The agent's user name (in the sandbox; on the host for ``runtime: host``).
    user: str = Field(default="agent", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    #: The agent's uid and gid. Files it writes in the workspace are owned by them.
    uid: int = Field(default=1000, ge=1, le=2**31 - 1)
    gid: int = Field(default=1000, ge=1, le=2**31 - 1)
    #: Name of an environment variable holding an Anthropic API key (read by ``aiwf up``).
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: A file holding an Anthropic API key; copied into the stack's secrets.
    api_key_file: AbsPath | None = None
    #: An existing Claude login (``~/.claude/.credentials.json``) to copy for the agent.
    credentials_file: AbsPath | None = None
    #: An API gateway or compatible server (``ANTHROPIC_BASE_URL``).
    base_url: HttpUrl | None = None
    #: Claude Code's permission mode: ``acceptEdits`` edits files without asking and asks
    #: before shell commands (answer in the browser terminal); ``auto`` lets Claude Code judge
    #: each call and ask only for the risky ones; ``bypassPermissions`` never asks.
    permission_mode: PermissionMode = "acceptEdits"
    #: Extra environment of agent sessions (e.g. ``CLAUDE_CODE_MAX_RETRIES``); no secrets here.
    environment: dict[str, str] = Field(default_factory=dict)

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"'{name}' is not a valid environment variable name")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> AgentSettings:
        if self.api_key_env and self.api_key_file:
            raise ValueError("agent.api_key_env, agent.api_key_file: both set; keep one of them")
        return self

    @property
    def credential(self) -> Literal["api_key", "login", "none"]:
        """What the agent signs in with: ``api_key``, ``login`` or ``none``."""
        if self.api_key_env or self.api_key_file:
            return "api_key"
        if self.credentials_file:
            return "login"
        return "none"


_GIT_URL = re.compile(r"^(https?://|ssh://|git://|file://|[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:|/)")


def _git_url(value: str) -> str:
    if not _GIT_URL.match(value):
        raise ValueError(
            f"'{value}' is not a git URL or an absolute path; e.g. https://github.com/o/r.git, "
            "git@github.com:o/r.git or /srv/git/r.git"
        )
    return value


GitUrl = Annotated[str, AfterValidator(_git_url)]


class RepositoryRef(Strict):
    """One repository agents work on: where it is and the branch their work starts from."""

    #: A git URL (https, ssh, git, file) or an absolute path on this host.
    url: GitUrl
    #: The branch each ticket's branch starts from (and a pull request would target).
    base_branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]+$")


class RepositorySettings(Strict):
    """The repository agents work on: each ticket gets its own worktree on its own branch.

    With no ``url`` agents work in ``paths.workspace`` itself, all in one folder::

        repository: {url: "git@github.com:acme/web.git", base_branch: main}
    """

    #: A git URL or an absolute path on this host (mounted read-only into the sandbox).
    url: GitUrl | None = None
    #: The branch each ticket's branch starts from.
    base_branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]+$")
    #: The ticket's branch: ``{identifier}`` is the ticket's (``WEB-12``).
    branch_template: str = Field(default="aiwf/{identifier}", pattern=r"^[A-Za-z0-9._/{}-]+$")
    #: An SSH deploy key for the repository (copied for the agent's user only, 0600).
    ssh_key_file: AbsPath | None = None
    #: The author of the commits made for a ticket when its agent left changes uncommitted.
    author_name: str = "aiwf agent"
    author_email: str = Field(default="agent@aiwf.invalid", pattern=r"^[^@\s]+@[^@\s]+$")
    #: Plane project identifier -> its own repository, for projects that are not ``url``'s.
    projects: dict[str, RepositoryRef] = Field(default_factory=dict)

    @field_validator("branch_template")
    @classmethod
    def _names_the_ticket(cls, value: str) -> str:
        if "{identifier}" not in value:
            raise ValueError(f"'{value}' must contain {{identifier}}, e.g. aiwf/{{identifier}}")
        return value


def _default_home() -> Path:
    return Path(os.environ.get("HOME") or "/root")


class HostPaths(Strict):
    """Paths on the host. Those shared with tmux sessions are mounted at the same path."""

    #: Everything the stack keeps on the host: rendered files, secrets, backups, logs.
    data_dir: AbsPath = Path("/var/lib/ai-workflow")
    #: Backup archives.
    backup_dir: AbsPath | None = None
    #: The folder of the agents' tmux server socket, shared by the sandbox (or the host's agent
    #: tmux server) and the tmux-sessions container; only the agent's uid may enter it.
    tmux_socket_dir: AbsPath | None = None
    #: Home folder mounted into tmux-sessions at the same path (agents work from it).
    home: AbsPath = Field(default_factory=_default_home)
    #: The agents' working folder.
    workspace: AbsPath | None = None
    #: Where the agents' ``/complete`` command writes completion files.
    completion_dir: AbsPath | None = None
    #: The local ticket folder (tickets as files, when Plane is not used).
    tickets_dir: AbsPath | None = None
    #: ``.claude.json`` holding the Plane MCP settings (mounted read-only when it exists).
    claude_json: AbsPath | None = None
    #: Folder of the ``fullchain.pem`` and ``privkey.pem`` nginx serves.
    certs_dir: AbsPath | None = None
    #: The agent's home folder (its ``~/.claude.json``, ``~/.claude/``).
    agent_home: AbsPath | None = None

    @model_validator(mode="after")
    def _derive(self) -> HostPaths:
        """Fill the paths that default to places under ``data_dir`` or ``home``."""
        derived = {
            "backup_dir": self.data_dir / "backups",
            "workspace": self.data_dir / "workspace",
            "completion_dir": self.data_dir / "completions",
            "tickets_dir": self.data_dir / "tickets",
            "claude_json": self.home / ".claude.json",
            "certs_dir": project_root() / "certs",
            "agent_home": self.data_dir / "agent" / "home",
            "tmux_socket_dir": self.data_dir / "agent" / "tmux",
        }
        for name, value in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        return self


class StackConfig(Strict):
    """The whole stack. Every field has a default: an empty config is a working local stack."""

    #: Names the containers, images, volumes and network (``<project>-nginx``).
    project: str = "ai-workflow"
    #: Names the stack answers to; the first is the certificate's subject.
    domains: list[DomainName] = Field(default_factory=lambda: ["localhost"], min_length=1)
    #: Certificates.
    tls: Tls = Field(default_factory=Tls)
    #: Published ports.
    ports: Ports = Field(default_factory=Ports)
    #: Host paths.
    paths: HostPaths = Field(default_factory=HostPaths)
    #: Per-service settings.
    services: Services = Field(default_factory=Services)
    #: Speech-to-text.
    speech: Speech = Field(default_factory=Speech)
    #: Origins the services accept with credentials; ``https://<domain>`` of each domain if empty.
    cors_origins: list[Origin] = Field(default_factory=list)
    #: Volume backups.
    backup: Backup = Field(default_factory=Backup)
    #: Log rotation.
    logrotate: Logrotate = Field(default_factory=Logrotate)
    #: The coding agent of approved tickets.
    agent: AgentSettings = Field(default_factory=AgentSettings)
    #: The repository the agents work on (a worktree and a branch per ticket).
    repository: RepositorySettings = Field(default_factory=RepositorySettings)

    @field_validator("project")
    @classmethod
    def _project_name(cls, value: str) -> str:
        if not _PROJECT_NAME.match(value):
            raise ValueError(
                f"'{value}' is not a valid project name: lowercase letters, digits, '-' and '_', "
                "starting with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StackConfig:
        if self.speech.mode == "local":
            object.__setattr__(self.services.whisper, "enabled", True)
        object.__setattr__(self.services.sandbox, "enabled", self.agent.runtime == "sandbox")
        if not self.cors_origins:
            object.__setattr__(self, "cors_origins", self.default_origins())
        if self.tls.mode == "letsencrypt" and not self.tls.email:
            raise ValueError(
                "tls.email: required when tls.mode is 'letsencrypt' (the ACME account's contact)"
            )
        if self.tls.mode == "letsencrypt" and self.domains == ["localhost"]:
            raise ValueError(
                "domains: only 'localhost', but tls.mode is 'letsencrypt'; list the public names"
            )
        return self

    def default_origins(self) -> list[str]:
        """``https://<domain>`` for every domain, with the port when it is not 443."""
        suffix = "" if self.ports.https == 443 else f":{self.ports.https}"
        return [f"https://{domain}{suffix}" for domain in self.domains]

    @property
    def network_name(self) -> str:
        """The Docker network: ``ai-workflow-network`` for the default project."""
        return f"{self.project}-network"

    def container_name(self, service: str) -> str:
        """``ai-workflow-orchestrator`` for service ``orchestrator`` of project ``ai-workflow``."""
        return f"{self.project}-{service}"

    def enabled_services(self) -> list[str]:
        """Names of the services to run, in dependency order."""
        return [name for name in SERVICE_NAMES if self.services.get(name).enabled]


#: The named volumes of the stack and the service that writes each.
VOLUMES: dict[str, str] = {
    "tmux-session-data": "tmux-sessions",
    "plane-orchestrator-data": "orchestrator",
    "plane-orchestrator-logs": "orchestrator",
}


def _field_path(loc: tuple[int | str, ...]) -> str:
    """``('services', 'orchestrator', 'port')`` -> ``services.orchestrator.port``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.startswith(("function-after", "function-before", "function-wrap")):
            continue
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def _known_fields(loc: tuple[int | str, ...]) -> list[str]:
    """Field names allowed at the parent of ``loc``, to suggest a fix for a misspelt key."""
    model: Any = StackConfig
    for item in loc[:-1]:
        if isinstance(item, int) or model is None:
            return []
        field = getattr(model, "model_fields", {}).get(item)
        model = getattr(field, "annotation", None) if field else None
    return list(getattr(model, "model_fields", {}))


def describe_errors(error: ValidationError) -> list[str]:
    """One line per problem: ``<field path>: <what is wrong> (given: <value>)``."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        path = _field_path(loc)
        message = str(item["msg"]).removeprefix("Value error, ")
        given = item.get("input")
        if item["type"] == "extra_forbidden":
            known = _known_fields(loc)
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"
            problems.append(f"{path}: unknown setting{hint}")
            continue
        if item["type"] == "missing":
            problems.append(f"{path}: required but not given")
            continue
        if given is not None and not isinstance(given, dict) and repr(given) not in message:
            shown = str(given)
            if shown not in message:
                message = f"{message} (given: {given!r})"
        if path == "(top level)" or message.startswith(f"{path}."):
            problems.append(message)  # the message already names the field it is about
        else:
            problems.append(f"{path}: {message}")
    return problems


def validate(data: Mapping[str, Any], source: str | None = None) -> StackConfig:
    """Validate a settings mapping into a :class:`StackConfig` or raise :class:`ConfigError`."""
    try:
        return StackConfig.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(describe_errors(error), source) from None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; mappings merge key by key, anything else replaces.

    >>> deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}})
    {'a': {'b': 1, 'c': 3}}
    """
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    inventory: Path | None = None,
    host: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> StackConfig:
    """The stack's settings for ``host`` of ``inventory`` (the local inventory by default).

    The CLI and ``deploy.py`` both call this; see :mod:`aiwf.inventory` for where settings live.
    """
    from aiwf.inventory import settings_for_host

    data, source = settings_for_host(inventory, host)
    if overrides:
        data = deep_merge(data, overrides)
    return validate(data, source)
