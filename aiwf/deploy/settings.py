"""What a remote deploy needs to know besides the stack's settings, and where things go on a host.

Two kinds of settings reach a deploy:

* the stack's settings (``aiwf = {...}`` in the inventory), loaded and validated exactly as the CLI
  loads them (:func:`aiwf.config.load_config`);
* how to install the stack on the host (``aiwf_deploy = {...}`` in the host or group data): where
  Docker comes from, where aiwf's own files go, who owns the working folders. These are validated
  by :class:`DeploySettings` with the same one-line-per-field errors.

The host gets its own settings written as an inventory file (:func:`host_settings_text`), so that
``aiwf`` on the host (``<install_dir>/bin/aiwf up``) reads the very settings the deploy rendered
its files from. Values whose defaults depend on the machine (``paths.home``,
``paths.certs_dir``) are filled from the host's facts, not from the machine running the deploy::

    >>> layout = RemoteLayout.of(config, DeploySettings())
    >>> str(layout.venv)
    '/var/lib/ai-workflow/aiwf/venv'
"""

from __future__ import annotations

import os
import pprint
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aiwf.config import StackConfig, deep_merge, describe_errors, validate
from aiwf.errors import ConfigError, DeployError

#: Host data key holding the :class:`DeploySettings` of a host.
DEPLOY_KEY = "aiwf_deploy"
#: Where the Plane API key lands on the host, relative to the install dir's secrets folder.
PLANE_KEY_NAME = "plane_api_key"
#: The agent's Anthropic API key, uploaded like the Plane key.
AGENT_KEY_NAME = "anthropic_api_key"


class DeploySettings(BaseModel):
    """How ``deploy.py`` installs the stack on one host (``aiwf_deploy`` host or group data)."""

    model_config = ConfigDict(extra="forbid")

    #: ``debian``: the distribution's ``docker.io``; ``docker``: Docker's own apt repository.
    docker_source: Literal["debian", "docker"] = "debian"
    #: Base URL of Docker's apt repository (``<url>/<distribution id>``).
    docker_apt_url: str = "https://download.docker.com/linux"
    #: aiwf's own files on the host (venv, sources, settings, lock); ``<data_dir>/aiwf`` if unset.
    install_dir: str | None = None
    #: Owner of the folders people and agents work in (workspace, tickets, completions).
    owner: str = Field(default="root", pattern=r"^[a-z_][a-z0-9_-]*\$?$")
    #: A deploy lock older than this is taken over (its deploy died without releasing it).
    lock_stale_minutes: int = Field(default=120, ge=1)
    #: Extra Debian packages to install on the host.
    extra_packages: list[str] = Field(default_factory=list)

    @field_validator("install_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"'{value}' is not an absolute path; write it from the root")
        return value

    @classmethod
    def from_host_data(cls, data: Any, source: str) -> DeploySettings:
        """Validate the ``aiwf_deploy`` data of a host; errors name ``aiwf_deploy.<field>``."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError([f"{DEPLOY_KEY}: must be a dict, got {type(data).__name__}"], source)
        try:
            return cls.model_validate(dict(data))
        except ValidationError as error:
            raise ConfigError(
                [f"{DEPLOY_KEY}.{problem}" for problem in describe_errors(error)], source
            ) from None


@dataclass(frozen=True)
class RemoteLayout:
    """Where aiwf's own files live on a host."""

    root: PurePosixPath

    @classmethod
    def of(cls, config: StackConfig, settings: DeploySettings) -> RemoteLayout:
        root = settings.install_dir or str(PurePosixPath(config.paths.data_dir) / "aiwf")
        return cls(PurePosixPath(root))

    @property
    def venv(self) -> PurePosixPath:
        return self.root / "venv"

    @property
    def source(self) -> PurePosixPath:
        """``AIWF_ROOT`` on the host: ``templates/`` and ``services/``."""
        return self.root / "src"

    @property
    def dist(self) -> PurePosixPath:
        return self.root / "dist"

    @property
    def settings_file(self) -> PurePosixPath:
        """The host's own inventory: ``hosts = [("@local", {"aiwf": {...}})]``."""
        return self.root / "inventory" / "host.py"

    @property
    def secrets(self) -> PurePosixPath:
        return self.root / "secrets"

    @property
    def command(self) -> PurePosixPath:
        """A wrapper running the host's aiwf with its settings: ``<root>/bin/aiwf up``."""
        return self.root / "bin" / "aiwf"

    @property
    def lock(self) -> PurePosixPath:
        return self.root / "deploy.lock"


@dataclass(frozen=True)
class HostDefaults:
    """Facts of the host that replace machine-dependent defaults of the settings."""

    home: str


def host_settings(
    raw: Mapping[str, Any], defaults: HostDefaults, layout: RemoteLayout
) -> dict[str, Any]:
    """The settings the host's aiwf reads: what the inventory gave, plus the host's own defaults.

    Paths left to their defaults that depend on the machine are made explicit from host facts;
    a Plane key given as a local variable or file becomes the file the deploy uploads.
    """
    paths = dict(raw.get("paths") or {})
    data_dir = PurePosixPath(str(paths.get("data_dir", "/var/lib/ai-workflow")))
    paths.setdefault("home", defaults.home)
    paths.setdefault("certs_dir", str(data_dir / "certs"))
    settings = deep_merge(raw, {"paths": paths})
    plane = ((settings.get("services") or {}).get("orchestrator") or {}).get("plane") or {}
    if plane.get("api_key_env") or plane.get("api_key_file"):
        settings = deep_merge(
            settings,
            {
                "services": {
                    "orchestrator": {
                        "plane": {
                            "api_key_env": None,
                            "api_key_file": str(layout.secrets / PLANE_KEY_NAME),
                        }
                    }
                }
            },
        )
    agent = settings.get("agent") or {}
    if agent.get("api_key_env") or agent.get("api_key_file"):
        uploaded = {"api_key_env": None, "api_key_file": str(layout.secrets / AGENT_KEY_NAME)}
        settings = deep_merge(settings, {"agent": uploaded})
    plain: dict[str, Any] = _plain(settings)
    return plain


def _plain(value: Any) -> Any:
    """Settings as plain literals (paths as strings), so the settings file is a Python literal."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Path | PurePosixPath):
        return str(value)
    return value


def host_settings_text(settings: Mapping[str, Any]) -> str:
    """The host's inventory file: same settings in, same bytes out (keys sorted)."""
    body = pprint.pformat(dict(settings), indent=4, width=96, sort_dicts=True)
    return (
        '"""Settings of this host, written by the aiwf deploy: edit the deploying inventory."""\n'
        "\n"
        f'hosts = [("@local", {{"aiwf": {body}}})]\n'
    )


def host_config(settings: Mapping[str, Any], source: str) -> StackConfig:
    """The validated config the host will see (the same validation as on the host)."""
    return validate(settings, source)


def _read_key(section: Mapping[str, Any], field: str) -> str | None:
    """The key ``section`` names by ``api_key_env`` (a local variable) or ``api_key_file``."""
    variable, path = section.get("api_key_env"), section.get("api_key_file")
    if variable:
        value = os.environ.get(str(variable), "").strip()
        if not value:
            raise DeployError(
                f"{field}.api_key_env: environment variable {variable} is not set or empty; "
                "export it before deploying"
            )
        return value
    if path:
        try:
            value = Path(str(path)).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise DeployError(
                f"{field}.api_key_file: {path} cannot be read: {error.strerror}"
            ) from None
        if not value:
            raise DeployError(f"{field}.api_key_file: {path} is empty")
        return value
    return None


def read_plane_key(raw: Mapping[str, Any]) -> str | None:
    """The Plane API key named by the deploying inventory (a local variable or file), if any."""
    plane = ((raw.get("services") or {}).get("orchestrator") or {}).get("plane") or {}
    return _read_key(plane, "services.orchestrator.plane")


def read_agent_key(raw: Mapping[str, Any]) -> str | None:
    """The agent's API key named by the deploying inventory (a local variable or file), if any."""
    return _read_key(raw.get("agent") or {}, "agent")
