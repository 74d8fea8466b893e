"""Ticket lists and actions (the dashboard's API)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response, status

from orchestrator.api.deps import OrchestratorDep
from orchestrator.models import TicketEnvelope, TicketList
from orchestrator.service import TicketConflict, TicketNotFound
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


def _not_found(ticket_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"No ticket with id {ticket_id}.")


@router.post("/approve/{ticket_id}", response_model=TicketEnvelope, responses=ERRORS)
async def approve(ticket_id: str, orchestrator: OrchestratorDep) -> TicketEnvelope:
    try:
        record = await orchestrator.approve(ticket_id)
    except TicketNotFound:
        raise _not_found(ticket_id) from None
    except TicketConflict as exc:
        detail = f"{exc}; only pending tickets can be approved."
        raise HTTPException(status.HTTP_409_CONFLICT, detail) from None
    return TicketEnvelope(ticket=record.public())


@router.post("/reject/{ticket_id}", response_model=TicketEnvelope, responses=ERRORS)
async def reject(ticket_id: str, orchestrator: OrchestratorDep) -> TicketEnvelope:
    try:
        record = await orchestrator.reject(ticket_id)
    except TicketNotFound:
        raise _not_found(ticket_id) from None
    except TicketConflict as exc:
        detail = f"{exc}; only pending tickets can be rejected."
        raise HTTPException(status.HTTP_409_CONFLICT, detail) from None
    return TicketEnvelope(ticket=record.public())


@router.post("/retry/{ticket_id}", response_model=TicketEnvelope, responses=ERRORS)
async def retry(ticket_id: str, orchestrator: OrchestratorDep) -> TicketEnvelope:
    try:
        record = await orchestrator.retry(ticket_id)
    except TicketNotFound:
        raise _not_found(ticket_id) from None
    except TicketConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{exc}.") from None
    return TicketEnvelope(ticket=record.public())


@router.delete("/tickets/{ticket_id}", status_code=204, responses={404: ERRORS[404]})
async def delete_ticket(ticket_id: str, orchestrator: OrchestratorDep) -> Response:
    try:
        await orchestrator.delete(ticket_id)
    except TicketNotFound:
        raise _not_found(ticket_id) from None
    return Response(status_code=204)
