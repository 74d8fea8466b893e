"""Login for the whole stack; nginx asks ``/api/auth/check`` before every protected route."""

from __future__ import annotations

import asyncio
import math
import time

from fastapi import APIRouter, HTTPException, Request, Response

from tmux_sessions.api.deps import (
    COOKIE_NAME,
    Context,
    CurrentIdentity,
    cross_site_write_problem,
    identify,
    origin_problem,
)
from tmux_sessions.core.security import SessionClaims, sign_session
from tmux_sessions.models import LoginRequest, Me
from tmux_sessions.ratelimit import client_address

router = APIRouter(prefix="/api/auth", tags=["auth"])
CHECKED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _client(request: Request, context: Context) -> str:
    peer = request.client.host if request.client else None
    return client_address(
        peer,
        request.headers.get("x-forwarded-for"),
        request.headers.get("x-real-ip"),
        trust_proxy=context.settings.trust_proxy_headers and context.proxies.trusts(peer),
    )


@router.post("/login", status_code=204)
async def login(body: LoginRequest, request: Request, context: Context) -> Response:
    problem = origin_problem(request, context, required=False)
    if problem:
        raise HTTPException(403, f"Refused: {problem}.")
    client = _client(request, context)
    wait = context.login_limiter.retry_after(client)
    if wait is not None:
        raise HTTPException(
            429,
            f"Too many failed logins; try again in {math.ceil(wait)} s.",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    # The attempt counts as failed before the (slow) password check runs, so tries sent all at
    # once meet the limit too; only a successful login clears the count.
    context.login_limiter.record_failure(client)
    user = await asyncio.to_thread(context.users.authenticate, body.username, body.password)
    if user is None:
        raise HTTPException(401, "Wrong username or password.")
    context.login_limiter.reset(client)
    max_age = context.settings.session_max_age_seconds
    now = time.time()
    expires_at = int(now) + max_age
    login_id = context.logins.issue(user.username, expires_at=expires_at, now=now)
    claims = SessionClaims(user.username, user.password_version, expires_at, login_id)
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE_NAME,
        sign_session(claims, context.secrets.cookie_key),
        max_age=max_age,
        path="/",
        secure=context.settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return response


def _cleared(context: Context) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        secure=context.settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout", status_code=204)
async def logout(request: Request, context: Context) -> Response:
    """End this login on the server (a copy of the cookie stops working too) and drop it."""
    identity = identify(request, context)
    if identity is not None and identity.login_id is not None:
        context.logins.end(identity.login_id)
    return _cleared(context)


@router.post("/logout-everywhere", status_code=204)
async def logout_everywhere(identity: CurrentIdentity, context: Context) -> Response:
    """End every login of the caller, on every browser."""
    if identity.via_token:
        raise HTTPException(400, "The service token has no logins to end.")
    context.logins.end_all(identity.username)
    return _cleared(context)


@router.api_route("/check", methods=list(CHECKED_METHODS), status_code=204)
async def check(request: Request, context: Context) -> Response:
    """nginx ``auth_request``: 204 for a valid cookie or token, 401 otherwise.

    nginx's subrequest is always a GET carrying the original request's headers, its method in
    ``X-Original-Method``: a cookie-borne write (by that method) from a foreign Origin gets
    403, so every route of the stack shares this CSRF check.
    """
    identity = identify(request, context)
    if identity is None:
        return Response(status_code=401)
    original = request.headers.get("x-original-method")
    if cross_site_write_problem(request, context, identity, method=original):
        return Response(status_code=403)
    return Response(status_code=204)


@router.get("/me")
async def me(identity: CurrentIdentity) -> Me:
    return Me(username=identity.username)
