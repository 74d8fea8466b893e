"""The desired state of the stack: one :class:`ServiceSpec` per container, derived from the config.

This is the single description both outputs read: the compose template renders it for users of
plain ``docker compose``, and the engine creates exactly these containers through docker-py. So a
mount, a variable or a health check is written down once, here.

Example::

    >>> specs = desired_services(load_config())
    >>> [spec.service for spec in specs]
    ['sandbox', 'tmux-sessions', 'orchestrator', 'dashboard', 'nginx']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from aiwf.config import VOLUMES, StackConfig

#: Where the secret files are mounted inside the containers (read-only).
SECRETS_MOUNT = PurePosixPath("/run/secrets")
#: Secret files aiwf generates on first ``up`` (stored 0600 under ``<data_dir>/secrets``).
GENERATED_SECRETS: tuple[str, ...] = ("session_key", "service_token", "admin_password")
#: Secrets read by processes running as the agent's uid (tmux-sessions, the agent itself): the
#: files are owned by that uid, still 0600.
AGENT_OWNED_SECRETS: tuple[str, ...] = (
    "session_key",
    "service_token",
    "admin_password",
    "anthropic_api_key",
)
#: Where the sandbox finds the Claude Code binary (the host's prepared folder, read-only).
CLAUDE_CODE_MOUNT = PurePosixPath("/opt/claude-code/bin")
#: How an isolated container (the sandbox) reaches services on the host, e.g. a model gateway.
HOST_GATEWAY_ALIAS = "host.docker.internal:host-gateway"
#: The socket of the agents' tmux server, inside ``paths.tmux_socket_dir``.
TMUX_SOCKET_NAME = "default"
#: Where the nginx container reads what aiwf renders and the certificates.
NGINX_CONF = PurePosixPath("/etc/nginx/nginx.conf")
#: The rendered directory as the nginx container sees it; the image links ``NGINX_CONF`` into it.
#: A directory (not the file) is mounted so that an atomic replace on the host is seen inside.
NGINX_RENDERED = PurePosixPath("/etc/nginx/aiwf")
NGINX_CERTS = PurePosixPath("/etc/nginx/certs")
ACME_WEBROOT = PurePosixPath("/var/www/acme")
#: The folder (under services/) holding each service's Dockerfile.
BUILD_FOLDERS: dict[str, str] = {
    "sandbox": "sandbox",
    "nginx": "nginx",
    "dashboard": "dashboard",
    "tmux-sessions": "tmux-sessions",
    "orchestrator": "orchestrator",
    "whisper": "whisper",
}
_VENV_PYTHON = "/opt/venv/bin/python"
#: Containers running as the agent's uid: the sandbox, and tmux-sessions (tmux lets only the
#: server's own uid connect to its socket).
AGENT_UID_SERVICES: tuple[str, ...] = ("sandbox", "tmux-sessions")


@dataclass(frozen=True)
class Mount:
    """A named volume (``kind="volume"``, ``source`` the stack-relative name) or a bind mount."""

    source: str
    target: str
    kind: str = "bind"
    read_only: bool = False


@dataclass(frozen=True)
class HealthCheck:
    """Docker health check; ``test`` is the exec form (``["CMD", ...]``)."""

    test: tuple[str, ...]
    interval_s: int = 5
    timeout_s: int = 5
    retries: int = 5
    start_period_s: int = 30


@dataclass(frozen=True)
class ServiceSpec:
    """Everything about one container except its built image id."""

    service: str
    container_name: str
    image: str
    build_folder: str
    base_image: str
    environment: dict[str, str]
    mounts: tuple[Mount, ...]
    secrets: tuple[str, ...]
    healthcheck: HealthCheck
    depends_on: tuple[str, ...]
    ports: tuple[tuple[str, int, int], ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    cpus: float | None = None
    memory: str | None = None
    restart: str = "unless-stopped"
    #: Build arguments besides ``BASE_IMAGE`` (the uid the image's user gets).
    build_args: dict[str, str] = field(default_factory=dict)
    #: ``True``: not on the stack's network but on the engine's default bridge (agents need the
    #: model API, not the stack's services).
    isolated: bool = False
    #: The host is reachable as ``host.docker.internal`` (a model gateway, a self-hosted Plane).
    reaches_host: bool = False
    #: Hardening: no capabilities at all (every container also gets ``no-new-privileges``).
    drop_capabilities: bool = False
    #: At most this many processes.
    pids_limit: int | None = None


def _python_probe(port: int, path: str = "/health") -> HealthCheck:
    code = (
        f"import urllib.request;urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=4)"
    )
    return HealthCheck(test=("CMD", _VENV_PYTHON, "-c", code))


def _curl_probe(url: str) -> HealthCheck:
    return HealthCheck(test=("CMD", "curl", "-fsS", "-o", "/dev/null", url))


def _same_path(path: object, read_only: bool = False) -> Mount:
    """A host path mounted at the same path, so tmux sessions and containers agree on it."""
    return Mount(source=str(path), target=str(path), read_only=read_only)


def _secret_env(name: str) -> str:
    return str(SECRETS_MOUNT / name)


def tmux_socket_dir(config: StackConfig) -> PurePosixPath:
    """The folder of the agents' tmux socket (derived from ``data_dir`` unless set)."""
    folder = config.paths.tmux_socket_dir
    assert folder is not None  # filled by HostPaths._derive
    return PurePosixPath(folder)


def tmux_socket(config: StackConfig) -> PurePosixPath:
    """The agents' tmux server socket, at the same path on the host and in the containers."""
    return tmux_socket_dir(config) / TMUX_SOCKET_NAME


def agent_home(config: StackConfig) -> PurePosixPath:
    """The agent's home folder on the host, mounted at the same path in the sandbox."""
    home = config.paths.agent_home
    assert home is not None  # filled by HostPaths._derive
    return PurePosixPath(home)


def claude_code_dir(config: StackConfig) -> PurePosixPath:
    """Where ``aiwf up`` keeps the pinned Claude Code: ``<data_dir>/agent/claude-code/<ver>``."""
    version = config.agent.claude_code_version
    return PurePosixPath(config.paths.data_dir) / "agent" / "claude-code" / version


def claude_program(config: StackConfig) -> str:
    """How a session names Claude Code: ``claude`` in the sandbox (on its PATH); on the host,
    the pinned binary's full path (tmux gives new sessions its client's PATH)."""
    if config.agent.runtime == "sandbox":
        return "claude"
    return str(claude_code_dir(config) / "claude")


def agent_key_path(config: StackConfig) -> PurePosixPath:
    """Where the agent reads its API key: the sandbox's secret mount, or on the host its own
    file beside its home (the secrets folder is root's alone)."""
    if config.agent.runtime == "sandbox":
        return SECRETS_MOUNT / "anthropic_api_key"
    return PurePosixPath(config.paths.data_dir) / "agent" / "anthropic_api_key"


def agent_command(config: StackConfig) -> str:
    """The command line each ticket's session runs (``{prompt}`` is filled in, quoted).

    >>> agent_command(load_config())
    'claude --permission-mode acceptEdits {prompt}'
    """
    custom = config.services.orchestrator.agent_command
    if custom:
        return custom
    program = claude_program(config)
    return f"{program} --permission-mode {config.agent.permission_mode} {{prompt}}"


def repository_key_path(config: StackConfig) -> PurePosixPath:
    """Where the agent finds the repository's SSH deploy key (in its home, 0600, its own)."""
    return agent_home(config) / ".ssh" / "aiwf_repository_key"


def local_repositories(config: StackConfig) -> list[str]:
    """The repositories given as paths on this host (``/srv/git/r.git``, ``file:///...``),
    which the sandbox mounts read-only at the same path so agents can clone them."""
    repository = config.repository
    urls = [repository.url, *(ref.url for ref in repository.projects.values())]
    paths = []
    for url in urls:
        if url is None:
            continue
        path = url.removeprefix("file://")
        if path.startswith("/") and path not in paths:
            paths.append(path)
    return paths


def repository_settings(config: StackConfig) -> str:
    """The repository settings as the orchestrator reads them (``ORCHESTRATOR_REPOSITORY``,
    JSON); empty when no repository is configured.

    >>> repository_settings(validate({"repository": {"url": "/srv/r.git"}}))[:30]
    '{"author_email": "agent@aiwf.i'
    """
    repository = config.repository
    if repository.url is None and not repository.projects:
        return ""
    data = repository.model_dump(mode="json", exclude={"ssh_key_file"})
    data["ssh_key"] = str(repository_key_path(config)) if repository.ssh_key_file else None
    return json.dumps(data, sort_keys=True)


def _owner_args(config: StackConfig) -> dict[str, str]:
    return {"APP_UID": str(config.agent.uid), "APP_GID": str(config.agent.gid)}


def _sandbox(config: StackConfig) -> tuple[dict[str, str], list[Mount], list[str]]:
    """The agents' container: a tmux server as the agent user, with the toolchain and Claude
    Code; only the workspace, the completion folder, its home and the socket folder mounted."""
    paths = config.paths
    home = agent_home(config)
    env = {
        "HOME": str(home),
        "USER": config.agent.user,
        "SHELL": "/bin/bash",
        "TERM": "xterm-256color",
        "AIWF_TMUX_SOCKET": str(tmux_socket(config)),
        "PATH": f"{CLAUDE_CODE_MOUNT}:/usr/local/bin:/usr/bin:/bin",
        # Each ticket's worktree is a git root Claude Code would ask a person to trust; it runs
        # where aiwf put it, behind the stack's approval (read at start, before its settings).
        "CLAUDE_CODE_SANDBOXED": "1",
    }
    mounts = [
        _same_path(tmux_socket_dir(config)),
        _same_path(home),
        _same_path(paths.workspace),
        _same_path(paths.completion_dir),
        Mount(source=str(claude_code_dir(config)), target=str(CLAUDE_CODE_MOUNT), read_only=True),
        *(_same_path(path, read_only=True) for path in local_repositories(config)),
    ]
    secrets = ["anthropic_api_key"] if config.agent.credential == "api_key" else []
    return env, mounts, secrets


def _tmux_sessions(config: StackConfig) -> tuple[dict[str, str], list[Mount], list[str]]:
    svc, paths = config.services.tmux_sessions, config.paths
    env = {
        "TMUX_SESSIONS_HOST": "0.0.0.0",
        "TMUX_SESSIONS_PORT": str(svc.port),
        "TMUX_SESSIONS_DATA_DIR": "/app/data",
        "TMUX_SESSIONS_TMUX_SOCKET": str(tmux_socket(config)),
        "TMUX_SESSIONS_START_SERVER": "false",
        # X-Forwarded-For is believed from nginx only: another peer cannot pick its address.
        "TMUX_SESSIONS_TRUSTED_PROXIES": "nginx",
        "TMUX_SESSIONS_SECRET_KEY_FILE": _secret_env("session_key"),
        "TMUX_SESSIONS_SERVICE_TOKEN_FILE": _secret_env("service_token"),
        "TMUX_SESSIONS_BOOTSTRAP_USER": svc.admin_user,
        "TMUX_SESSIONS_BOOTSTRAP_PASSWORD_FILE": _secret_env("admin_password"),
        "TMUX_SESSIONS_ALLOWED_ORIGINS": ",".join(config.cors_origins),
        "TMUX_SESSIONS_DEFAULT_CWD": str(paths.workspace),
    }
    # A tmux client only: the server and every session live in the sandbox (or run as the
    # agent user on the host); the workspace is here only to check a session's folder exists.
    mounts = [
        Mount(source="tmux-session-data", target="/app/data", kind="volume"),
        _same_path(tmux_socket_dir(config)),
        _same_path(paths.workspace, read_only=True),
    ]
    return env, mounts, ["session_key", "service_token", "admin_password"]


def claude_json_mounted(config: StackConfig, present: bool | None = None) -> bool:
    """Whether the orchestrator mounts ``paths.claude_json``: only a file that exists where the
    containers run can be mounted (a missing one would become an empty folder).

    ``present`` is what a deploy found on its host; ``None`` looks on this machine, where
    ``aiwf up`` runs. Example: ``claude_json_mounted(config, present=False)`` -> ``False``.
    """
    path = config.paths.claude_json
    if path is None:
        return False
    return path.is_file() if present is None else present


def _orchestrator(
    config: StackConfig, claude_json_present: bool | None = None
) -> tuple[dict[str, str], list[Mount], list[str]]:
    svc, paths = config.services.orchestrator, config.paths
    tmux_port = config.services.tmux_sessions.port
    env = {
        "ORCHESTRATOR_HOST": "0.0.0.0",
        "ORCHESTRATOR_PORT": str(svc.port),
        "ORCHESTRATOR_DATA_DIR": "/app/data",
        "ORCHESTRATOR_LOG_DIR": "/app/logs",
        "ORCHESTRATOR_TMUX_URL": f"http://tmux-sessions:{tmux_port}",
        "ORCHESTRATOR_TMUX_TOKEN_FILE": _secret_env("service_token"),
        "ORCHESTRATOR_COMPLETION_DIR": str(paths.completion_dir),
        "ORCHESTRATOR_TICKETS_DIR": "/app/tickets",
        "ORCHESTRATOR_CLAUDE_JSON": "/app/config/claude.json",
        "ORCHESTRATOR_WORKSPACE": str(paths.workspace),
        "ORCHESTRATOR_CORS_ORIGINS": ",".join(config.cors_origins),
        "ORCHESTRATOR_MAX_ACTIVE": str(svc.max_active),
        "ORCHESTRATOR_SESSION_TIME_LIMIT": str(svc.session_time_limit_minutes * 60),
        "ORCHESTRATOR_POLL_INTERVAL": str(svc.poll_interval_seconds),
        "ORCHESTRATOR_SELECT_LABELS": ",".join(svc.select_labels),
        "ORCHESTRATOR_SELECT_STATE_GROUPS": ",".join(svc.select_state_groups),
    }
    env["ORCHESTRATOR_AGENT_COMMAND"] = agent_command(config)
    repository = repository_settings(config)
    if repository:
        env["ORCHESTRATOR_REPOSITORY"] = repository
    env["ORCHESTRATOR_AGENT_CREDENTIAL"] = config.agent.credential
    mounts = [
        Mount(source="plane-orchestrator-data", target="/app/data", kind="volume"),
        Mount(source="plane-orchestrator-logs", target="/app/logs", kind="volume"),
        Mount(source=str(paths.tickets_dir), target="/app/tickets"),
        _same_path(paths.completion_dir),
        _same_path(paths.workspace, read_only=True),
    ]
    secrets = ["service_token"]
    if svc.ticket_source == "local":
        # No Plane settings reach the daemon, so it reads the local ticket folder.
        return env, mounts, secrets
    plane = svc.plane
    if plane.api_url:
        env["PLANE_API_URL"] = plane.api_url
    if plane.workspace_slug:
        env["PLANE_WORKSPACE_SLUG"] = plane.workspace_slug
    if plane.projects:
        env["ORCHESTRATOR_PLANE_PROJECTS"] = ",".join(plane.projects)
    if plane.api_key_env or plane.api_key_file:
        env["ORCHESTRATOR_PLANE_API_KEY_FILE"] = _secret_env("plane_api_key")
        secrets.append("plane_api_key")
    if paths.claude_json and claude_json_mounted(config, claude_json_present):
        mounts.append(
            Mount(source=str(paths.claude_json), target="/app/config/claude.json", read_only=True)
        )
    return env, mounts, secrets


def _whisper(config: StackConfig) -> tuple[dict[str, str], list[Mount], list[str]]:
    speech = config.speech
    env = {
        "WHISPER_HOST": "0.0.0.0",
        "WHISPER_PORT": str(config.services.whisper.port),
        "WHISPER_DEVICE": speech.device,
        "WHISPER_COMPUTE_TYPE": speech.compute_type,
    }
    mounts = []
    if speech.model_dir:
        env["WHISPER_MODEL_DIR"] = "/models"
        mounts.append(Mount(source=str(speech.model_dir), target="/models", read_only=True))
    return env, mounts, []


def _nginx(config: StackConfig) -> tuple[dict[str, str], list[Mount], list[str]]:
    paths = config.paths
    mounts = [
        Mount(source=str(rendered_dir(config)), target=str(NGINX_RENDERED), read_only=True),
        Mount(source=str(paths.certs_dir), target=str(NGINX_CERTS), read_only=True),
        Mount(source=str(acme_webroot(config)), target=str(ACME_WEBROOT), read_only=True),
        Mount(source=str(paths.data_dir / "logs" / "nginx"), target="/var/log/nginx"),
    ]
    return {}, mounts, []


def rendered_dir(config: StackConfig) -> PurePosixPath:
    """Where ``aiwf up`` writes the rendered files the containers mount."""
    return PurePosixPath(config.paths.data_dir) / "rendered"


def acme_webroot(config: StackConfig) -> PurePosixPath:
    """The host folder nginx serves ``/.well-known/acme-challenge/`` from (certbot writes it)."""
    return PurePosixPath(config.paths.data_dir) / "acme-webroot"


def secrets_dir(config: StackConfig) -> PurePosixPath:
    """Host folder of the generated secrets (0700, files 0600)."""
    return PurePosixPath(config.paths.data_dir) / "secrets"


def image_name(config: StackConfig, service: str) -> str:
    """``ai-workflow-orchestrator`` (tag ``latest``; the previous one is kept as ``previous``)."""
    return f"{config.project}-{service}"


def volume_name(config: StackConfig, volume: str) -> str:
    """The engine's name of a stack volume: ``ai-workflow_plane-orchestrator-data``."""
    return f"{config.project}_{volume}"


def _dependencies(config: StackConfig, service: str) -> tuple[str, ...]:
    enabled = set(config.enabled_services())
    wanted = {
        "tmux-sessions": ("sandbox",),
        "orchestrator": ("tmux-sessions",),
        "nginx": ("dashboard", "tmux-sessions", "orchestrator", "whisper"),
    }.get(service, ())
    return tuple(name for name in wanted if name in enabled)


def desired_services(
    config: StackConfig, claude_json_present: bool | None = None
) -> list[ServiceSpec]:
    """The containers of the stack, in dependency order, as the config asks for them.

    ``claude_json_present``: see :func:`claude_json_mounted`.
    """
    socket = str(tmux_socket(config))
    builders = {
        "sandbox": (
            _sandbox,
            HealthCheck(test=("CMD", "tmux", "-S", socket, "show-options", "-g", "exit-empty")),
        ),
        "tmux-sessions": (_tmux_sessions, _python_probe(config.services.tmux_sessions.port)),
        "orchestrator": (
            lambda c: _orchestrator(c, claude_json_present),
            _python_probe(config.services.orchestrator.port),
        ),
        "whisper": (_whisper, _python_probe(config.services.whisper.port)),
        "dashboard": (
            lambda _c: ({}, [], []),
            _curl_probe(f"http://127.0.0.1:{config.services.dashboard.port}/"),
        ),
        "nginx": (_nginx, _curl_probe("http://127.0.0.1/health")),
    }
    specs = []
    for service in config.enabled_services():
        settings = config.services.get(service)
        build, health = builders[service]
        env, mounts, secrets = build(config)
        env = {**env, **settings.environment}
        ports: tuple[tuple[str, int, int], ...] = ()
        if service == "nginx":
            ports = (
                (config.ports.bind, config.ports.http, 80),
                (config.ports.bind, config.ports.https, 443),
            )
        specs.append(
            ServiceSpec(
                service=service,
                container_name=config.container_name(service),
                image=image_name(config, service),
                build_folder=BUILD_FOLDERS[service],
                base_image=settings.base_image,
                environment=env,
                mounts=tuple(mounts),
                secrets=tuple(secrets),
                healthcheck=health,
                depends_on=_dependencies(config, service),
                ports=ports,
                labels={"aiwf.project": config.project, "aiwf.service": service},
                cpus=settings.resources.cpus,
                memory=settings.resources.memory,
                build_args=_owner_args(config) if service in AGENT_UID_SERVICES else {},
                isolated=service == "sandbox",
                reaches_host=service in ("sandbox", "orchestrator"),
                drop_capabilities=service in AGENT_UID_SERVICES,
                pids_limit=settings.resources.pids,
            )
        )
    return specs


def stack_volumes(config: StackConfig) -> dict[str, str]:
    """Volume name -> engine volume name, for the volumes of the enabled services."""
    enabled = set(config.enabled_services())
    return {name: volume_name(config, name) for name, owner in VOLUMES.items() if owner in enabled}
