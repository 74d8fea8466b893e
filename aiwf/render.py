"""Render the stack's files from the Jinja templates: pure functions of the config.

:func:`render_all` turns one :class:`~aiwf.config.StackConfig` into file name -> text; the
same config always gives the same bytes (no timestamps, sorted where order is free).
:func:`write_rendered` puts the texts on disk atomically and reports, per file, whether it was
created, changed or left as it was; :func:`compare_rendered` answers the same question without
writing (``--dry-run``).

What the files need beyond the config (the resolver nginx asks, the upstream addresses, where the
certificates are) comes from a :class:`RenderContext`. Its defaults describe the containers of the
stack; tests swap in loopback addresses to run the rendered nginx on the host::

    >>> files = render_all(load_config())
    >>> sorted(files)
    ['compose.yaml', 'logrotate.conf', 'nginx.conf']

Other parts of aiwf add files with :func:`register_renderer` (a backup timer, for example).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2

from aiwf.config import StackConfig
from aiwf.errors import AiwfError
from aiwf.files import write_atomic
from aiwf.paths import services_dir, templates_dir
from aiwf.stack import (
    ACME_WEBROOT,
    HOST_GATEWAY_ALIAS,
    NGINX_CERTS,
    SECRETS_MOUNT,
    ServiceSpec,
    desired_services,
    secrets_dir,
    stack_volumes,
    volume_name,
)

#: A login is a username and a password: nothing bigger is read on the public login route.
LOGIN_MAX_BODY_SIZE = "8k"
#: Docker's embedded DNS server, which resolves the service names inside the stack's network.
DOCKER_DNS = "127.0.0.11"
#: The compose key of the stack's network (its engine name is ``config.network_name``).
NETWORK_KEY = "ai-workflow-network"
#: Compose profile of the whisper service while speech-to-text is not served locally.
SPEECH_PROFILE = "speech"


@dataclass(frozen=True)
class RenderContext:
    """Where the rendered files run: the addresses and paths that are not settings.

    The defaults are the stack's containers; :meth:`for_stack` fills the upstreams from the config.
    Example, for an nginx on the host in a test::

        RenderContext.for_stack(config).with_changes(
            resolver="127.0.0.1", upstreams={"tmux-sessions": "127.0.0.1:40001", ...}
        )
    """

    #: DNS server nginx asks for upstream names at request time.
    resolver: str = DOCKER_DNS
    #: Service name -> ``host:port`` nginx proxies to.
    upstreams: Mapping[str, str] = field(default_factory=dict)
    #: nginx ``listen`` arguments of the plain and the TLS server.
    listen_http: str = "80"
    listen_https: str = "443"
    #: Folders as the nginx container sees them.
    certs_dir: str = str(NGINX_CERTS)
    acme_webroot: str = str(ACME_WEBROOT)
    log_dir: str = "/var/log/nginx"
    #: The ``user`` nginx workers run as; ``None`` keeps nginx's default.
    nginx_user: str | None = None
    #: A folder for nginx's request-body and proxy buffers; ``None`` keeps the built-in paths.
    nginx_temp_dir: str | None = None
    #: Folder holding the services' build contexts (``services/<folder>``).
    services_dir: str = field(default_factory=lambda: str(services_dir()))
    #: The engine's data root; named volumes live under ``<docker_root>/volumes``.
    docker_root: str = "/var/lib/docker"
    #: Whether ``paths.claude_json`` is a file where the stack runs; ``None``: look here.
    claude_json_present: bool | None = None

    @classmethod
    def for_stack(cls, config: StackConfig) -> RenderContext:
        """The context of the real stack: service names on the Docker network, Docker's DNS."""
        services = config.services
        upstreams = {
            "tmux-sessions": f"tmux-sessions:{services.tmux_sessions.port}",
            "orchestrator": f"orchestrator:{services.orchestrator.port}",
            "dashboard": f"dashboard:{services.dashboard.port}",
            "whisper": f"whisper:{services.whisper.port}",
        }
        return cls(upstreams=upstreams)

    def with_changes(self, **changes: Any) -> RenderContext:
        """A copy with fields replaced; ``upstreams`` given here merge into the current ones."""
        if "upstreams" in changes:
            changes["upstreams"] = {**self.upstreams, **changes["upstreams"]}
        return replace(self, **changes)


Renderer = Callable[[StackConfig, RenderContext], str]
_RENDERERS: dict[str, Renderer] = {}


def register_renderer(name: str) -> Callable[[Renderer], Renderer]:
    """Decorator adding a rendered file: ``@register_renderer("aiwf-backup.timer")``.

    The function receives the config and the render context and returns the file's text; it
    must be pure (same input, same text) so that ``aiwf render`` reports real changes only.
    """

    def add(function: Renderer) -> Renderer:
        if name in _RENDERERS and _RENDERERS[name] is not function:
            raise ValueError(f"a renderer for {name} is already registered")
        _RENDERERS[name] = function
        return function

    return add


def renderers() -> dict[str, Renderer]:
    """The registered files, by name, in registration order."""
    return dict(_RENDERERS)


def _yaml_string(value: object) -> str:
    """A YAML scalar compose reads literally: JSON quoting, and ``$`` doubled against interpolation.

    >>> _yaml_string("echo $HOME")
    '"echo $$HOME"'
    """
    return json.dumps(str(value).replace("$", "$$"), ensure_ascii=False)


def _nginx_string(value: object) -> str:
    """A quoted nginx string argument: ``"a \\"b\\""``."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@cache
def _environment(folder: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yaml"] = _yaml_string
    env.filters["nginx_str"] = _nginx_string
    return env


def render_template(name: str, **values: Any) -> str:
    """Render ``templates/<name>`` with ``values``; an unknown name in it is an error."""
    try:
        template = _environment(str(templates_dir())).get_template(name)
        return template.render(**values)
    except jinja2.TemplateNotFound:
        raise AiwfError(f"template {name} not found in {templates_dir()}") from None
    except jinja2.UndefinedError as error:
        raise AiwfError(f"template {name}: {error}") from None


@dataclass(frozen=True)
class RemoteUpstream:
    """A remote speech upstream split for nginx: ``origin`` for proxy_pass, ``path`` prepended."""

    origin: str
    host: str
    path: str


def _remote(url: str) -> RemoteUpstream:
    parts = urlsplit(url)
    return RemoteUpstream(
        origin=f"{parts.scheme}://{parts.netloc}",
        host=parts.hostname or "",
        path=parts.path.rstrip("/"),
    )


def _https_suffix(config: StackConfig) -> str:
    return "" if config.ports.https == 443 else f":{config.ports.https}"


@register_renderer("nginx.conf")
def render_nginx(config: StackConfig, context: RenderContext) -> str:
    """The reverse proxy: routes, TLS, the auth gate (see the design's route table)."""
    enabled = set(config.enabled_services())
    return render_template(
        "nginx.conf.j2",
        config=config,
        ctx=context,
        upstreams=context.upstreams,
        enabled=enabled,
        speech_mode=config.speech.mode,
        remote=_remote(config.speech.url) if config.speech.url else None,
        hsts=config.tls.mode != "self-signed",
        https_suffix=_https_suffix(config),
        server_names=" ".join(config.domains),
        login_max_body_size=LOGIN_MAX_BODY_SIZE,
    )


def optional_services(config: StackConfig) -> list[ServiceSpec]:
    """Services that are off but can be started on demand: whisper, under the ``speech`` profile.

    Rendered into the compose file with ``profiles: [speech]`` so that
    ``docker compose --profile speech up`` starts it without editing anything.
    """
    if config.services.whisper.enabled:
        return []
    with_speech = config.model_copy(deep=True)
    object.__setattr__(with_speech.services.whisper, "enabled", True)
    return [spec for spec in desired_services(with_speech) if spec.service == "whisper"]


@register_renderer("compose.yaml")
def render_compose(config: StackConfig, context: RenderContext) -> str:
    """The compose file: the same containers the engine runs, from :func:`desired_services`."""
    specs: list[tuple[ServiceSpec, tuple[str, ...]]]
    specs = [(spec, ()) for spec in desired_services(config, context.claude_json_present)]
    specs += [(spec, (SPEECH_PROFILE,)) for spec in optional_services(config)]
    volumes = dict(stack_volumes(config))
    for spec, _profiles in specs:
        for mount in spec.mounts:
            if mount.kind == "volume":
                volumes.setdefault(mount.source, volume_name(config, mount.source))
    return render_template(
        "compose.yaml.j2",
        config=config,
        ctx=context,
        specs=specs,
        volumes=dict(sorted(volumes.items())),
        network_key=NETWORK_KEY,
        host_gateway=HOST_GATEWAY_ALIAS,
        secrets_dir=str(secrets_dir(config)),
        secrets_mount=str(SECRETS_MOUNT),
    )


@register_renderer(".env")
def render_compose_env(config: StackConfig, context: RenderContext) -> str:
    """The compose project name, read from ``.env`` beside ``compose.yaml``.

    Debian's docker-compose 1.29 rejects a top-level ``name:`` key, while both it and Compose v2
    read ``COMPOSE_PROJECT_NAME`` from the ``.env`` file of the project directory.
    """
    return f"# Rendered by aiwf.\nCOMPOSE_PROJECT_NAME={config.project}\n"


def _logrotate_size(value: str) -> str:
    """logrotate spells sizes ``100k``, ``100M``, ``1G``: ``100m`` becomes ``100M``."""
    number, unit = (value[:-1], value[-1]) if value[-1].isalpha() else (value, "")
    return number + {"k": "k", "m": "M", "g": "G"}.get(unit.lower(), "")


@register_renderer("logrotate.conf")
def render_logrotate(config: StackConfig, context: RenderContext) -> str:
    """Rotation of the orchestrator's log (inside its volume) and nginx's logs on the host."""
    enabled = set(config.enabled_services())
    orchestrator_logs = None
    if "orchestrator" in enabled:
        volume = volume_name(config, "plane-orchestrator-logs")
        orchestrator_logs = f"{context.docker_root}/volumes/{volume}/_data"
    return render_template(
        "logrotate.conf.j2",
        config=config,
        rotation=config.logrotate,
        max_size=_logrotate_size(config.logrotate.max_size),
        orchestrator_logs=orchestrator_logs,
        nginx_logs=str(config.paths.data_dir / "logs" / "nginx") if "nginx" in enabled else None,
        nginx_container=config.container_name("nginx"),
    )


def render_all(config: StackConfig, context: RenderContext | None = None) -> dict[str, str]:
    """Every registered file, rendered: file name -> text."""
    context = context or RenderContext.for_stack(config)
    return {name: render(config, context) for name, render in renderers().items()}


class FileState(StrEnum):
    CREATED = "created"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class FileResult:
    """What writing one rendered file did (or, in a dry run, would do)."""

    name: str
    path: Path
    state: FileState


def _state(path: Path, text: str) -> FileState:
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        return FileState.CREATED
    except OSError as error:
        raise AiwfError(f"cannot write {path}: {error.strerror}") from None
    return FileState.UNCHANGED if current == text.encode() else FileState.CHANGED


def compare_rendered(files: Mapping[str, str], out_dir: Path) -> list[FileResult]:
    """What :func:`write_rendered` would do, without touching the disk."""
    return [
        FileResult(name, out_dir / name, _state(out_dir / name, text))
        for name, text in files.items()
    ]


def write_rendered(files: Mapping[str, str], out_dir: Path) -> list[FileResult]:
    """Write the files that differ from what is in ``out_dir``; report every file's state."""
    results = compare_rendered(files, out_dir)
    try:
        for result in results:
            if result.state is not FileState.UNCHANGED:
                write_atomic(result.path, files[result.name].encode())
    except OSError as error:
        raise AiwfError(f"cannot write {error.filename or out_dir}: {error.strerror}") from None
    return results
