"""Who is calling: the session cookie (people) or the service token (the orchestrator)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from tmux_sessions.api.context import AppContext, get_context
from tmux_sessions.core.config import normalise_origin
from tmux_sessions.core.security import read_session, tokens_equal

COOKIE_NAME = "aiwf_session"
SERVICE_USERNAME = "service"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Identity:
    username: str
    via_token: bool
    #: The login a cookie belongs to (None for the service token).
    login_id: str | None = None


def identify(connection: HTTPConnection, context: AppContext) -> Identity | None:
    """The caller's identity from a Bearer token or a valid, current session cookie."""
    token = context.secrets.service_token
    scheme, _, presented = connection.headers.get("authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and tokens_equal(presented.strip(), token):
        return Identity(SERVICE_USERNAME, via_token=True)
    cookie = connection.cookies.get(COOKIE_NAME)
    if not cookie:
        return None
    now = time.time()
    claims = read_session(cookie, context.secrets.cookie_key, now=now)
    if claims is None or not context.logins.is_live(claims.login_id, claims.username, now=now):
        return None
    user = context.users.get(claims.username)
    if user is None or user.password_version != claims.password_version:
        return None
    return Identity(user.username, via_token=False, login_id=claims.login_id)


def origin_problem(
    connection: HTTPConnection, context: AppContext, *, required: bool
) -> str | None:
    """Why the Origin header is unacceptable, or None. Browsers always send it on WebSockets."""
    origin = connection.headers.get("origin")
    if origin is None:
        return "the Origin header is missing" if required else None
    if normalise_origin(origin) not in context.settings.origins:
        return f"origin {origin} is not allowed (TMUX_SESSIONS_ALLOWED_ORIGINS)"
    return None


def require_identity(
    request: Request, context: Annotated[AppContext, Depends(get_context)]
) -> Identity:
    """Refuse anonymous calls (401) and cookie-borne writes from foreign origins (403)."""
    identity = identify(request, context)
    if identity is None:
        raise HTTPException(401, "Log in first (POST /api/auth/login) or send the service token.")
    problem = cross_site_write_problem(request, context, identity)
    if problem:
        raise HTTPException(403, f"Refused: {problem}.")
    return identity


def cross_site_write_problem(
    request: Request, context: AppContext, identity: Identity, method: str | None = None
) -> str | None:
    """A write carried by the cookie must come from an allowed Origin (when one is sent).

    ``method`` is the method of the request being judged when that is not ``request`` itself:
    nginx's ``auth_request`` subrequest is always a GET and names the original method in
    ``X-Original-Method``.
    """
    if identity.via_token or (method or request.method).upper() in SAFE_METHODS:
        return None
    return origin_problem(request, context, required=False)


Context = Annotated[AppContext, Depends(get_context)]
CurrentIdentity = Annotated[Identity, Depends(require_identity)]
