"""The FastAPI application: ``create_app(Settings())`` reads secrets and state, then serves."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tmux_sessions.api.context import AppContext
from tmux_sessions.api.limits import LoginBodyLimit
from tmux_sessions.api.main import api_router
from tmux_sessions.core.config import Settings
from tmux_sessions.core.secrets import Secrets
from tmux_sessions.logins import LoginRegistry
from tmux_sessions.ratelimit import LoginRateLimiter, TrustedProxies
from tmux_sessions.sessions import InvalidSessionRequestError, SessionManager, UnknownSessionError
from tmux_sessions.shutdown import Shutdown
from tmux_sessions.store import SessionStore
from tmux_sessions.tmux import DuplicateSessionError, Tmux, TmuxError, TmuxUnavailableError
from tmux_sessions.unavailable import retry_after_header, unavailable_detail
from tmux_sessions.users import UserStore

log = logging.getLogger("tmux_sessions")


def build_context(settings: Settings, shutdown: Shutdown | None = None) -> AppContext:
    """Read secrets and state files; raises SecretFileError/StateFileError with a clear line."""
    secrets = Secrets.load(settings)
    tmux = Tmux(
        settings.tmux_socket,
        settings.tmux_binary,
        shutdown=shutdown,
        start_server=settings.start_server,
    )
    tmux.prepare_socket_directory()
    users = UserStore(settings.users_file)
    created = users.ensure_bootstrap_user(settings.bootstrap_user, secrets.bootstrap_password)
    if created is not None:
        log.info(
            "created the first user %r from TMUX_SESSIONS_BOOTSTRAP_PASSWORD_FILE", created.username
        )
    elif not users.list_users():
        log.warning(
            "users.json has no users: set TMUX_SESSIONS_BOOTSTRAP_PASSWORD_FILE or run "
            "'python -m tmux_sessions.admin add-user NAME'"
        )
    manager = SessionManager(
        tmux,
        SessionStore(settings.sessions_file),
        default_cwd=settings.working_directory,
        dead_retention=settings.dead_session_retention,
    )
    limiter = LoginRateLimiter(settings.login_max_failures, settings.login_window_seconds)
    logins = LoginRegistry(settings.logins_file)
    names = [name.strip() for name in settings.trusted_proxies.split(",") if name.strip()]
    return AppContext(
        settings, secrets, tmux, manager, users, limiter, logins, TrustedProxies(names)
    )


def _one_sentence(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"] if part != "body") or "body"
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{location}: {message}")
    return "; ".join(problems)


def _detail(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def create_app(settings: Settings | None = None, shutdown: Shutdown | None = None) -> FastAPI:
    """The application; ``shutdown`` is set by the server when it is told to stop."""
    context = build_context(settings or Settings(), shutdown)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            records = await context.sessions.refresh()
            log.info("reconciled %d sessions with tmux", len(records))
        except TmuxError as error:
            log.warning("could not reconcile sessions with tmux yet: %s", error)
        yield

    app = FastAPI(title="aiwf tmux-sessions", lifespan=lifespan)
    app.state.context = context
    app.add_middleware(LoginBodyLimit)
    app.include_router(api_router)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        return _detail(422, _one_sentence(error))

    @app.exception_handler(UnknownSessionError)
    async def _unknown(_: Request, error: UnknownSessionError) -> JSONResponse:
        return _detail(404, f"{error.args[0]}.")

    @app.exception_handler(InvalidSessionRequestError)
    async def _invalid(_: Request, error: InvalidSessionRequestError) -> JSONResponse:
        return _detail(422, str(error))

    @app.exception_handler(DuplicateSessionError)
    async def _duplicate(_: Request, error: DuplicateSessionError) -> JSONResponse:
        return _detail(409, f"{error}; pick another name.")

    @app.exception_handler(TmuxUnavailableError)
    async def _tmux_unavailable(_: Request, error: TmuxUnavailableError) -> JSONResponse:
        log.warning("answered 503: %s", error)
        return _detail(503, unavailable_detail(error), retry_after_header())

    @app.exception_handler(TmuxError)
    async def _tmux(_: Request, error: TmuxError) -> JSONResponse:
        return _detail(502, f"tmux refused: {error}")

    return app
