"""Everything a request needs, built once per process and kept on ``app.state.context``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from tmux_sessions.core.config import Settings
from tmux_sessions.core.secrets import Secrets
from tmux_sessions.logins import LoginRegistry
from tmux_sessions.ratelimit import LoginRateLimiter, TrustedProxies
from tmux_sessions.sessions import SessionManager
from tmux_sessions.tmux import Tmux
from tmux_sessions.users import UserStore


@dataclass
class AppContext:
    settings: Settings
    secrets: Secrets
    tmux: Tmux
    sessions: SessionManager
    users: UserStore
    login_limiter: LoginRateLimiter
    logins: LoginRegistry
    proxies: TrustedProxies


def get_context(connection: HTTPConnection) -> AppContext:
    context: AppContext = connection.app.state.context
    return context
