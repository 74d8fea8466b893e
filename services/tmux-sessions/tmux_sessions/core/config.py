"""Settings of the service, read from ``TMUX_SESSIONS_*`` environment variables.

Example: ``TMUX_SESSIONS_PORT=5002 python -m tmux_sessions`` listens on port 5002.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_tmux_socket() -> Path:
    """The socket tmux itself uses when given no ``-S``: ``$TMUX_TMPDIR/tmux-UID/default``."""
    base = Path(os.environ.get("TMUX_TMPDIR") or "/tmp")
    return base / f"tmux-{os.getuid()}" / "default"


class Settings(BaseSettings):
    """Every knob of the service; the README lists them with their defaults."""

    model_config = SettingsConfigDict(env_prefix="TMUX_SESSIONS_", extra="ignore")

    port: int = Field(default=5001, ge=1, le=65535)
    host: str = "0.0.0.0"
    data_dir: Path = Path("/app/data")
    tmux_socket: Path = Field(default_factory=default_tmux_socket)
    tmux_binary: str = "tmux"
    #: ``False``: only talk to a tmux server that runs already (the stack's sandbox); never
    #: start one here.
    start_server: bool = True
    secret_key_file: Path | None = Path("/run/secrets/tmux_sessions_secret_key")
    service_token_file: Path | None = None
    bootstrap_user: str = "admin"
    bootstrap_password_file: Path | None = None
    allowed_origins: str = "https://localhost"
    cookie_secure: bool = True
    session_max_age_seconds: int = Field(default=12 * 3600, ge=60)
    default_cwd: Path | None = None
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    trust_proxy_headers: bool = True
    #: Comma-separated names or addresses of the proxies whose X-Forwarded-For is believed
    #: (the stack's ``nginx``); empty: any peer's (standalone use behind your own proxy).
    trusted_proxies: str = ""
    client_buffer_bytes: int = Field(default=1024 * 1024, ge=4096)
    dead_session_retention: int = Field(default=200, ge=0)
    log_level: str = "info"

    @cached_property
    def origins(self) -> frozenset[str]:
        """ALLOWED_ORIGINS as a set of normalised origins (``https://host[:port]``)."""
        return frozenset(
            normalise_origin(item) for item in self.allowed_origins.split(",") if item.strip()
        )

    @property
    def sessions_file(self) -> Path:
        return self.data_dir / "sessions.json"

    @property
    def logins_file(self) -> Path:
        return self.data_dir / "logins.json"

    @property
    def users_file(self) -> Path:
        return self.data_dir / "users.json"

    @property
    def working_directory(self) -> Path:
        """Where new sessions start when the request names no ``cwd``."""
        return self.default_cwd or Path.home()


def normalise_origin(origin: str) -> str:
    """Lower-case an origin and drop a trailing slash: ``HTTPS://Host/`` -> ``https://host``."""
    return origin.strip().rstrip("/").lower()
