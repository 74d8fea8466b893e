"""FastAPI dependencies: the orchestrator and metrics live on ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from orchestrator.metrics import Metrics
from orchestrator.service import Orchestrator


def get_orchestrator(request: Request) -> Orchestrator:
    orchestrator: Orchestrator = request.app.state.orchestrator
    return orchestrator


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
