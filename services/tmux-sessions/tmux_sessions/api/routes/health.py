"""``GET /health``: ``OK`` while the tmux binary and its socket directory are usable."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from tmux_sessions.api.deps import Context

router = APIRouter(tags=["health"])


@router.get("/health", response_class=PlainTextResponse)
async def health(context: Context) -> PlainTextResponse:
    problem = await context.tmux.problem()
    if problem:
        return PlainTextResponse(f"UNAVAILABLE: {problem}", status_code=503)
    return PlainTextResponse("OK")
