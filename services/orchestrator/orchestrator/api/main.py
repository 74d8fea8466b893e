"""Application factory: wires settings, source, tmux client and store into the FastAPI app.

Example::

    app = create_app(Settings())
    uvicorn.run(app, host="0.0.0.0", port=5002)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from orchestrator import __version__
from orchestrator.api.routes import health, tickets, webhooks
from orchestrator.core.config import Settings, load_plane_credentials, read_secret_file
from orchestrator.metrics import Metrics
from orchestrator.service import ChangeNotRecorded, Orchestrator, TicketConflict, TicketNotFound
from orchestrator.sources.base import TicketSource
from orchestrator.sources.local import LocalFolderSource
from orchestrator.sources.plane import PlaneClient, PlaneSource
from orchestrator.store import TicketStore
from orchestrator.tmux_client import TmuxClient

log = logging.getLogger(__name__)


def build_orchestrator(settings: Settings, metrics: Metrics, problems: list[str]) -> Orchestrator:
    """Pick the ticket source (Plane when credentials are complete, else the local folder)."""
    credentials, credential_problems = load_plane_credentials(settings)
    problems = [*problems, *credential_problems]
    source: TicketSource
    if credentials is not None:
        source = PlaneSource(
            PlaneClient(credentials, metrics),
            projects=settings.project_list,
            started_state=settings.started_state,
            completed_state=settings.completed_state,
        )
        log.info(
            "ticket source: Plane workspace %s at %s",
            credentials.workspace_slug,
            credentials.api_url,
        )
    else:
        source = LocalFolderSource(settings.tickets_dir)
        log.info("ticket source: local folder %s", settings.tickets_dir)
    token = read_secret_file(settings.tmux_token_file)
    if settings.tmux_token_file is not None and token is None:
        problems.append(
            f"ORCHESTRATOR_TMUX_TOKEN_FILE {settings.tmux_token_file} is missing or empty"
        )
    tmux = TmuxClient(settings.tmux_url, token)
    return Orchestrator(settings, TicketStore(settings.data_dir), source, tmux, metrics, problems)


def _answer(status_code: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    """Exception handler: the domain error's sentence as ``{"detail"}`` with this status."""

    async def handle(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=status_code)

    return handle


def create_app(settings: Settings, startup_problems: list[str] | None = None) -> FastAPI:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        orchestrator = build_orchestrator(settings, metrics, list(startup_problems or []))
        app.state.orchestrator = orchestrator
        await orchestrator.start()
        for problem in orchestrator.problems():
            log.warning("startup problem: %s", problem)
        try:
            yield
        finally:
            await orchestrator.stop()

    app = FastAPI(title="aiwf orchestrator", version=__version__, lifespan=lifespan)
    app.state.metrics = metrics
    app.state.deliveries = webhooks.DeliveryLog()
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o for o in origins if o != "*"],
            allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type"],
        )
    app.add_exception_handler(TicketNotFound, _answer(404))
    app.add_exception_handler(ChangeNotRecorded, _answer(404))
    app.add_exception_handler(TicketConflict, _answer(409))
    app.include_router(health.router)
    app.include_router(tickets.router)
    app.include_router(webhooks.router)
    return app
