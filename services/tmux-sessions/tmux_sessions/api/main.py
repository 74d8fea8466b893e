"""All routers of the service."""

from fastapi import APIRouter

from tmux_sessions.api.routes import auth, health, sessions, terminal

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(auth.router)
api_router.include_router(sessions.router)
api_router.include_router(terminal.router)
