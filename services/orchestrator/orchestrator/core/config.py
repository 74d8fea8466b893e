"""Settings of the orchestrator, read from the environment (prefix ``ORCHESTRATOR_``).

Plane credentials come from ``.claude.json`` (``mcpServers.plane.env``) and are overridden by the
plain ``PLANE_API_KEY`` / ``PLANE_WORKSPACE_SLUG`` / ``PLANE_API_URL`` environment variables, or by
``ORCHESTRATOR_PLANE_API_KEY_FILE`` for a key mounted as a secret file.

Example::

    ORCHESTRATOR_DATA_DIR=/tmp/data ORCHESTRATOR_MAX_ACTIVE=2 python -m orchestrator
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_AGENT_COMMAND = "claude {prompt}"
NO_AGENT_CREDENTIAL = (
    "no agent credential configured: set agent.api_key_env, agent.api_key_file or "
    "agent.credentials_file in the settings, then run aiwf up"
)
PLANE_CLOUD_API = "https://api.plane.so"


# A branch name (and a branch template): what aiwf's settings allow, never an option to git.
BRANCH_NAME = r"^[A-Za-z0-9._/][A-Za-z0-9._/-]*$"
BRANCH_TEMPLATE = r"^[A-Za-z0-9._/{}][A-Za-z0-9._/{}-]*$"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _one_plain_line(value: str | None) -> str | None:
    """A value that goes into a git command line and a commit: one line, never an option."""
    if value is None:
        return None
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters (newlines, tabs)")
    if value.startswith("-"):
        raise ValueError("must not start with '-'")
    return value


class RepositoryRef(BaseModel):
    """A repository a project's agents work on, and the branch their work starts from."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1)]
    base_branch: str = Field(default="main", pattern=BRANCH_NAME)

    _plain_url = field_validator("url")(_one_plain_line)


class RepositorySetting(BaseModel):
    """``ORCHESTRATOR_REPOSITORY`` (JSON, written by aiwf): each ticket gets a worktree of this
    repository on a branch of its own, so agents never share a checkout.

    Example::

        {"url": "/srv/git/web.git", "base_branch": "main", "branch_template": "aiwf/{identifier}",
         "author_name": "aiwf agent", "author_email": "agent@aiwf.invalid", "ssh_key": null,
         "projects": {"OPS": {"url": "git@example.com:acme/ops.git", "base_branch": "main"}}}
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    base_branch: str = Field(default="main", pattern=BRANCH_NAME)
    branch_template: str = Field(default="aiwf/{identifier}", pattern=BRANCH_TEMPLATE)
    author_name: Annotated[str, Field(min_length=1)] = "aiwf agent"
    author_email: str = Field(default="agent@aiwf.invalid", pattern=r"^[^@\s]+@[^@\s]+$")
    ssh_key: str | None = None
    projects: dict[str, RepositoryRef] = Field(default_factory=dict)

    _plain_values = field_validator("url", "author_name")(_one_plain_line)

    @field_validator("branch_template")
    @classmethod
    def _names_the_ticket(cls, value: str) -> str:
        if "{identifier}" not in value:
            raise ValueError(f"{value!r} must contain {{identifier}}, e.g. aiwf/{{identifier}}")
        return value

    @field_validator("ssh_key")
    @classmethod
    def _absolute_key(cls, value: str | None) -> str | None:
        if value is not None and not PurePosixPath(value).is_absolute():
            raise ValueError(f"{value!r} must be an absolute path the agent can read")
        return value

    def for_identifier(self, identifier: str) -> RepositoryRef | None:
        """The repository of a ticket: its project's entry (the identifier's prefix, ``WEB`` of
        ``WEB-12``) when there is one, else ``url``; None means no repository (the workspace).

        >>> RepositorySetting(url="/r.git", projects={"OPS": {"url": "/o.git"}}).for_identifier(
        ...     "OPS-3").url
        '/o.git'
        """
        project = identifier.rpartition("-")[0]
        if project in self.projects:
            return self.projects[project]
        if self.url is None:
            return None
        return RepositoryRef(url=self.url, base_branch=self.base_branch)


def _split(value: str) -> list[str]:
    """Split a comma-separated setting into trimmed, non-empty items."""
    return [item.strip() for item in value.split(",") if item.strip()]


class Settings(BaseSettings):
    """Every knob of the daemon; README.md lists them with their defaults."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    host: str = "0.0.0.0"
    port: int = Field(default=5002, ge=1, le=65535)
    data_dir: Path = Path("/app/data")
    log_dir: Path = Path("/app/logs")
    log_level: str = "INFO"

    tmux_url: str = "http://tmux-sessions:5001"
    tmux_token_file: Path | None = None

    completion_dir: Path = Path("/tmp")
    agent_completion_dir: Path | None = None
    completion_archive_dir: Path | None = None
    rescan_interval: float = Field(default=10.0, gt=0)

    claude_json: Path = Path("/root/.claude.json")
    tickets_dir: Path = Path("/app/tickets")
    workspace: str = "/workspace"
    agent_command: str = DEFAULT_AGENT_COMMAND
    prompt_template_file: Path | None = None
    # How aiwf gave the agent its credential. Empty means nobody said (standalone use), so the
    # daemon launches as before; "none" means an agent would only stop at Claude's login screen.
    agent_credential: Literal["api_key", "login", "none", ""] = ""
    # The repository agents work on (JSON from aiwf); unset or empty: agents share the workspace.
    repository: Annotated[RepositorySetting | None, NoDecode] = None

    cors_origins: str = ""
    max_active: int = Field(default=3, ge=1)
    session_time_limit: float = Field(default=4 * 3600, gt=0)
    poll_interval: float = Field(default=60.0, gt=0)
    session_check_interval: float = Field(default=5.0, gt=0)
    tracker_retry_max_delay: float = Field(default=300.0, gt=0)

    plane_projects: str = ""
    select_state_groups: str = "backlog,unstarted"
    select_states: str = ""
    select_labels: str = "claude"
    select_assignee: str = ""
    started_state: str = ""
    completed_state: str = ""
    webhook_secret_file: Path | None = None

    plane_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("PLANE_API_KEY", "ORCHESTRATOR_PLANE_API_KEY")
    )
    plane_api_key_file: Path | None = None
    plane_workspace_slug: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PLANE_WORKSPACE_SLUG", "ORCHESTRATOR_PLANE_WORKSPACE_SLUG"),
    )
    plane_api_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PLANE_API_URL", "ORCHESTRATOR_PLANE_API_URL")
    )

    @field_validator("repository", mode="before")
    @classmethod
    def _repository_json(cls, value: Any) -> Any:
        """The environment gives JSON text; empty means no repository."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None

    @property
    def cors_origin_list(self) -> list[str]:
        return _split(self.cors_origins)

    @property
    def project_list(self) -> list[str]:
        return _split(self.plane_projects)

    @property
    def state_group_list(self) -> list[str]:
        return [group.lower() for group in _split(self.select_state_groups)]

    @property
    def state_name_list(self) -> list[str]:
        return [name.lower() for name in _split(self.select_states)]

    @property
    def label_list(self) -> list[str]:
        return [label.lower() for label in _split(self.select_labels)]

    @property
    def agent_ready(self) -> bool:
        """False only when aiwf said the agent has no credential, so launching one is pointless."""
        return self.agent_credential != "none"

    @property
    def archive_dir(self) -> Path:
        return self.completion_archive_dir or self.data_dir / "completions"

    @property
    def agent_side_completion_dir(self) -> Path:
        return self.agent_completion_dir or self.completion_dir


@dataclass(frozen=True)
class PlaneCredentials:
    """What the Plane client needs; ``api_url`` always ends in ``/api/v1``."""

    api_key: str = field(repr=False)
    workspace_slug: str
    api_url: str


def normalise_api_url(url: str) -> str:
    """Return the v1 API root for a Plane host or API URL.

    >>> normalise_api_url("https://plane.example.com/")
    'https://plane.example.com/api/v1'
    """
    url = url.rstrip("/")
    if url.endswith("/api/v1"):
        return url
    if url.endswith("/api"):
        return url + "/v1"
    return url + "/api/v1"


def _read_claude_json(path: Path, problems: list[str]) -> dict[str, str]:
    """Return ``mcpServers.plane.env`` from ``.claude.json``, noting why it could not be read."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        problems.append(f"cannot read {path}: {exc.strerror}; fix its permissions or unset it")
        return {}
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        problems.append(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix the file to use Plane"
        )
        return {}
    env = (
        document.get("mcpServers", {}).get("plane", {}).get("env", {})
        if isinstance(document, dict)
        else {}
    )
    if not isinstance(env, dict):
        problems.append(f"{path}: mcpServers.plane.env must be an object of strings")
        return {}
    return {str(key): str(value) for key, value in env.items() if isinstance(value, str | int)}


def load_plane_credentials(settings: Settings) -> tuple[PlaneCredentials | None, list[str]]:
    """Resolve Plane credentials; ``None`` means the local ticket folder is the source.

    Environment variables win over ``.claude.json``. Problems come back as sentences for
    ``/health`` instead of exceptions, so a bad file never puts the daemon in a crash loop.
    """
    problems: list[str] = []
    from_file = _read_claude_json(settings.claude_json, problems)
    api_key = settings.plane_api_key or from_file.get("PLANE_API_KEY")
    if settings.plane_api_key_file is not None:
        try:
            api_key = settings.plane_api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(
                f"ORCHESTRATOR_PLANE_API_KEY_FILE {settings.plane_api_key_file}: {exc.strerror}"
            )
    slug = settings.plane_workspace_slug or from_file.get("PLANE_WORKSPACE_SLUG")
    api_url = settings.plane_api_url or from_file.get("PLANE_API_URL") or PLANE_CLOUD_API
    if not api_key:
        if slug:
            problems.append(
                "PLANE_WORKSPACE_SLUG is set but PLANE_API_KEY is missing: add it to "
                ".claude.json mcpServers.plane.env or the environment; "
                "using the local ticket folder"
            )
        return None, problems
    if not slug:
        problems.append(
            "PLANE_API_KEY is set but PLANE_WORKSPACE_SLUG is missing: add it to "
            ".claude.json mcpServers.plane.env or the environment; using the local ticket folder"
        )
        return None, problems
    return PlaneCredentials(api_key, slug, normalise_api_url(api_url)), problems


def read_secret_file(path: Path | None) -> str | None:
    """Read a secret from a mounted file, trimmed; ``None`` when unset or unreadable."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


__all__ = [
    "DEFAULT_AGENT_COMMAND",
    "NO_AGENT_CREDENTIAL",
    "PlaneCredentials",
    "RepositoryRef",
    "RepositorySetting",
    "Settings",
    "load_plane_credentials",
    "normalise_api_url",
    "read_secret_file",
]
