"""``/api/sessions``: list, create, get, delete, type into tmux sessions."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tmux_sessions.api.deps import Context, CurrentIdentity
from tmux_sessions.models import SessionCreate, SessionInput, SessionPublic
from tmux_sessions.store import SessionRecord

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


def public(record: SessionRecord) -> SessionPublic:
    return SessionPublic.model_validate(record, from_attributes=True)


@router.get("")
async def list_sessions(context: Context, _: CurrentIdentity) -> list[SessionPublic]:
    return [public(record) for record in await context.sessions.refresh()]


@router.post("", status_code=201)
async def create_session(
    body: SessionCreate, context: Context, identity: CurrentIdentity
) -> SessionPublic:
    return public(await context.sessions.create(body, created_by=identity.username))


@router.get("/{session_id}")
async def get_session(session_id: str, context: Context, _: CurrentIdentity) -> SessionPublic:
    return public(await context.sessions.get(session_id))


@router.delete("/{session_id}", status_code=204)
async def delete_session(session_id: str, context: Context, _: CurrentIdentity) -> Response:
    await context.sessions.delete(session_id)
    return Response(status_code=204)


@router.post("/{session_id}/input", status_code=204)
async def send_input(
    session_id: str, body: SessionInput, context: Context, _: CurrentIdentity
) -> Response:
    await context.sessions.send_input(session_id, body.data, enter=body.enter)
    return Response(status_code=204)
