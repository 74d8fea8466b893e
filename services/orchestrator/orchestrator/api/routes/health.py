"""``/health`` (always 200, the body tells the truth) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

import os
from typing import Literal

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.api.deps import MetricsDep, OrchestratorDep
from orchestrator.models import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health(orchestrator: OrchestratorDep) -> Health:
    tmux_ok = await orchestrator.tmux.healthy()
    problems = orchestrator.problems()
    if not tmux_ok and orchestrator.tmux_problem is None:
        problems.append(f"tmux-sessions service at {orchestrator.tmux.base_url} is unreachable")
    writable = os.access(orchestrator.store.data_dir, os.W_OK | os.X_OK)
    state: Literal["healthy", "degraded", "unhealthy"] = (
        "healthy" if tmux_ok and not problems else "degraded"
    )
    if not writable:
        state = "unhealthy"
        problems.append(f"data directory {orchestrator.store.data_dir} is not writable")
    store = orchestrator.store
    return Health(
        status=state,
        tmux_service=tmux_ok,
        pending_count=len(store.pending),
        active_count=len(store.active),
        completed_count=len(store.completed),
        source=orchestrator.source.kind,
        problems=problems,
        # Reported, not judged: the daemon itself works without an agent credential (sync,
        # lists, completions), so neither status nor problems change; the dashboard says it.
        agent_credential=orchestrator.settings.agent_credential or "unknown",
        agent_ready=orchestrator.settings.agent_ready,
    )


@router.get("/metrics")
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
