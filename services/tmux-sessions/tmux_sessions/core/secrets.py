"""Secrets come from files (``*_FILE`` settings); a bad file stops the start with one clear line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tmux_sessions.core.config import Settings

MIN_SECRET_LENGTH = 16
ENV_PREFIX = "TMUX_SESSIONS_"


class SecretFileError(RuntimeError):
    """A secret file named by a setting is unset, missing, unreadable or too short."""


def read_secret_file(setting: str, path: Path | None, *, min_length: int = 1) -> str:
    """Read a secret, stripped of surrounding whitespace.

    Example: ``read_secret_file("SECRET_KEY_FILE", None)`` raises SecretFileError
    "TMUX_SESSIONS_SECRET_KEY_FILE is not set; point it at a file holding the secret."
    """
    name = ENV_PREFIX + setting
    if path is None:
        raise SecretFileError(f"{name} is not set; point it at a file holding the secret.")
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise SecretFileError(
            f"{name}: {path} does not exist; create it or fix the path."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise SecretFileError(f"{name}: cannot read {path} ({reason}).") from None
    if len(value) < min_length:
        raise SecretFileError(
            f"{name}: {path} holds {len(value)} characters; it needs at least {min_length}."
        )
    return value


@dataclass(frozen=True)
class Secrets:
    """The secrets the running service needs, read once at start."""

    cookie_key: bytes
    service_token: str | None
    bootstrap_password: str | None

    @classmethod
    def load(cls, settings: Settings) -> Secrets:
        cookie_key = read_secret_file(
            "SECRET_KEY_FILE", settings.secret_key_file, min_length=MIN_SECRET_LENGTH
        )
        token = None
        if settings.service_token_file is not None:
            token = read_secret_file(
                "SERVICE_TOKEN_FILE", settings.service_token_file, min_length=MIN_SECRET_LENGTH
            )
        password = None
        if settings.bootstrap_password_file is not None:
            password = read_secret_file(
                "BOOTSTRAP_PASSWORD_FILE", settings.bootstrap_password_file, min_length=8
            )
        return cls(cookie_key.encode(), token, password)
