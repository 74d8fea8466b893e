"""The stack's users, kept in ``users.json`` with scrypt hashes.

Example::

    store = UserStore(Path("/app/data/users.json"))
    store.add_user("admin", "a long password")
    store.authenticate("admin", "a long password")  # -> User(...)
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tmux_sessions.core.security import hash_password, verify_password
from tmux_sessions.fileio import StateFileError, read_json, write_json_atomic

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD_LENGTH = 8
# Verified when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hash_password("timing-equaliser")


class UserError(ValueError):
    """A user operation that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class User:
    username: str
    password_hash: str
    password_version: int
    created_at: str


def check_username(username: str) -> str:
    """Return the name when usable, else raise UserError naming the rule."""
    if not USERNAME_PATTERN.match(username):
        raise UserError(
            f"username {username!r}: use 1-64 letters, digits or the characters _ . @ -"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password: needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


class UserStore:
    """users.json, re-read when its mtime changes (the admin command may edit it meanwhile)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _load(self) -> dict[str, User]:
        with self._lock:
            stamp = self._current_stamp()
            if stamp != self._stamp or stamp is None:
                self._users = self._parse(read_json(self.path))
                self._stamp = stamp
            return self._users

    def _parse(self, data: Any) -> dict[str, User]:
        if data is None:
            return {}
        try:
            return {
                name: User(
                    username=name,
                    password_hash=str(entry["password_hash"]),
                    password_version=int(entry.get("password_version", 1)),
                    created_at=str(entry.get("created_at", "")),
                )
                for name, entry in data["users"].items()
            }
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise StateFileError(
                f'{self.path}: expected {{"users": {{name: {{"password_hash": ...}}}}}} '
                f"({type(error).__name__}: {error}); fix the file or restore it from a backup."
            ) from None

    def _save(self, users: dict[str, User]) -> None:
        data = {
            "version": 1,
            "users": {
                user.username: {
                    "password_hash": user.password_hash,
                    "password_version": user.password_version,
                    "created_at": user.created_at,
                }
                for user in users.values()
            },
        }
        write_json_atomic(self.path, data)
        with self._lock:
            self._users = users
            self._stamp = self._current_stamp()

    def list_users(self) -> list[User]:
        return sorted(self._load().values(), key=lambda user: user.username)

    def get(self, username: str) -> User | None:
        return self._load().get(username)

    def add_user(self, username: str, password: str) -> User:
        check_username(username)
        check_password(password)
        users = dict(self._load())
        if username in users:
            raise UserError(f"user {username!r} exists; use reset-password to change it")
        created = datetime.now(UTC).isoformat(timespec="seconds")
        users[username] = User(username, hash_password(password), 1, created)
        self._save(users)
        return users[username]

    def reset_password(self, username: str, password: str) -> User:
        check_password(password)
        users = dict(self._load())
        old = users.get(username)
        if old is None:
            raise UserError(f"user {username!r} does not exist; add it with add-user")
        users[username] = User(
            username, hash_password(password), old.password_version + 1, old.created_at
        )
        self._save(users)
        return users[username]

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches; None otherwise, taking the same time."""
        user = self.get(username)
        if user is None:
            verify_password(password, _DUMMY_HASH)
            return None
        return user if verify_password(password, user.password_hash) else None

    def ensure_bootstrap_user(self, username: str, password: str | None) -> User | None:
        """Create the first user when there is none and a password is given."""
        if self._load() or password is None:
            return None
        return self.add_user(username, password)
