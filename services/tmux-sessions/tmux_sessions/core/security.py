"""Password hashes (scrypt) and the signed session cookie of the stack.

The cookie is ``base64(username|password_version|expires_at|login_id).base64(hmac)``. Changing a
password bumps ``password_version``, which ends every cookie issued before; the login id must
also still be on the server's list (:mod:`tmux_sessions.logins`), so logging out ends a cookie
at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
HASH_SCHEME = "scrypt"


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """Return ``scrypt$N$r$p$salt$hash`` for storing in users.json.

    >>> hash_password("correct horse").startswith("scrypt$32768$8$1$")
    True
    """
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM
    )
    return f"{HASH_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64encode(salt)}${_b64encode(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Check ``password`` against a stored hash in constant time; a malformed hash is False."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != HASH_SCHEME:
            return False
        expected = _b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class SessionClaims:
    """What a valid cookie says: who, which password generation, until when (epoch seconds),
    and which login (the id the server keeps while the login lasts)."""

    username: str
    password_version: int
    expires_at: int
    login_id: str


def sign_session(claims: SessionClaims, key: bytes) -> str:
    """Encode and sign claims as a cookie value."""
    fields = (claims.username, claims.password_version, claims.expires_at, claims.login_id)
    payload = _b64encode("|".join(str(field) for field in fields).encode())
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64encode(mac)}"


def read_session(value: str, key: bytes, *, now: float) -> SessionClaims | None:
    """Return the claims of a well-signed, unexpired cookie value, else None."""
    payload, _, mac = value.partition(".")
    if not payload or not mac:
        return None
    expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_b64decode(mac), expected):
            return None
        username, version, expires_at, login_id = _b64decode(payload).decode().split("|")
        claims = SessionClaims(username, int(version), int(expires_at), login_id)
    except ValueError:
        return None
    if claims.expires_at <= now:
        return None
    return claims


def tokens_equal(given: str, expected: str) -> bool:
    """Compare a presented bearer token with the configured one in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())
