"""The logins the server knows: a cookie is valid only while its login is on this list.

Each login gets a random id carried (signed) in its cookie. Logging out takes that id off the
list, signing out everywhere takes all of a user's ids off, so a cookie copied before then stops
working at once instead of at its expiry. The list is kept in ``logins.json`` (0600, written
atomically) and survives restarts.

Example::

    logins = LoginRegistry(Path("/app/data/logins.json"))
    login_id = logins.issue("admin", expires_at=time.time() + 3600)
    logins.is_live(login_id, "admin", now=time.time())   # True
    logins.end(login_id)                                 # False from now on
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

from tmux_sessions.fileio import StateFileError, read_json, write_json_atomic


class LoginRegistry:
    """Login id -> (user, expiry), in memory for the auth check, on disk for restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        stored = read_json(path) or {}
        try:
            self._logins: dict[str, tuple[str, float]] = {
                str(login_id): (str(entry["user"]), float(entry["expires_at"]))
                for login_id, entry in stored.items()
            }
        except (AttributeError, KeyError, TypeError, ValueError):
            raise StateFileError(
                f"{path}: not the list of logins we wrote; move it away to log everyone out "
                "and start again"
            ) from None

    def _save(self) -> None:
        data = {
            login_id: {"user": user, "expires_at": expires_at}
            for login_id, (user, expires_at) in self._logins.items()
        }
        write_json_atomic(self.path, data)

    def issue(self, username: str, *, expires_at: float, now: float | None = None) -> str:
        """A new login of ``username``; expired ones are dropped while the list is written."""
        login_id = secrets.token_urlsafe(18)
        with self._lock:
            if now is not None:
                self._logins = {k: v for k, v in self._logins.items() if v[1] > now}
            self._logins[login_id] = (username, expires_at)
            self._save()
        return login_id

    def is_live(self, login_id: str, username: str, *, now: float) -> bool:
        entry = self._logins.get(login_id)
        return entry is not None and entry[0] == username and entry[1] > now

    def end(self, login_id: str) -> bool:
        """Log one login out; False when it was not on the list."""
        with self._lock:
            if self._logins.pop(login_id, None) is None:
                return False
            self._save()
        return True

    def end_all(self, username: str) -> int:
        """Log every login of ``username`` out (sign out everywhere); how many there were."""
        with self._lock:
            ended = [k for k, (user, _) in self._logins.items() if user == username]
            for login_id in ended:
                del self._logins[login_id]
            if ended:
                self._save()
        return len(ended)
