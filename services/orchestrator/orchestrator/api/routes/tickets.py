"""Ticket lists and actions (the dashboard's API).

Unknown ids and wrong statuses raise domain errors that ``api.main`` turns into 404 and 409.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from orchestrator.api.deps import OrchestratorDep
from orchestrator.models import TicketChange, TicketEnvelope, TicketList
from orchestrator.store import ListName

router = APIRouter(prefix="/api", tags=["tickets"])
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown ticket"},
    409: {"description": "Wrong status"},
}


def _list(orchestrator: OrchestratorDep, name: ListName) -> Response:
    return Response(orchestrator.store.list_json(name), media_type="application/json")


@router.get("/pending-tickets", response_model=TicketList)
async def pending_tickets(orchestrator: OrchestratorDep) -> Response:
    return _list(orchestrator, "pending")


@router.get("/active-tickets", response_model=TicketList)
async def active_tickets(orchestrator: OrchestratorDep) -> Response:
    return _list(orchestrator, "active")


@router.get("/completed-tickets", response_model=TicketList)
async def completed_tickets(orchestrator: OrchestratorDep) -> Response:
    return _list(orchestrator, "completed")


@router.post("/approve/{ticket_id}", response_model=TicketEnvelope, responses=ERRORS)
async def approve(ticket_id: str, orchestrator: OrchestratorDep) -> TicketEnvelope:
    return TicketEnvelope(ticket=(await orchestrator.approve(ticket_id)).public())


@router.post("/reject/{ticket_id}", response_model=TicketEnvelope, responses=ERRORS)
async def reject(ticket_id: str, orchestrator: OrchestratorDep) -> TicketEnvelope:
    return TicketEnvelope(ticket=(await orchestrator.reject(ticket_id)).public())


@router.post("/retry/{ticket_id}", response_model=TicketEnvelope, responses=ERRORS)
async def retry(ticket_id: str, orchestrator: OrchestratorDep) -> TicketEnvelope:
    return TicketEnvelope(ticket=(await orchestrator.retry(ticket_id)).public())


@router.delete("/tickets/{ticket_id}", status_code=204, responses={404: ERRORS[404]})
async def delete_ticket(ticket_id: str, orchestrator: OrchestratorDep) -> Response:
    await orchestrator.delete(ticket_id)
    return Response(status_code=204)


@router.get(
    "/tickets/{ticket_id}/change",
    response_model=TicketChange,
    responses={404: {"description": "Unknown ticket, or no recorded change"}},
)
async def ticket_change(ticket_id: str, orchestrator: OrchestratorDep) -> TicketChange:
    """The branch, commits, diffstat and patch the finish job recorded for the ticket."""
    return await orchestrator.change(ticket_id)
