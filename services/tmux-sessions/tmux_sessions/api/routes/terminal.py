"""``WS /ws/sessions/{id}``: a browser terminal attached to a tmux session.

Server -> client: binary frames of terminal output (the current screen first, as tmux redraws
on attach). Client -> server: JSON text frames ``input`` and ``resize``; ``?mode=view`` attaches
a read-only viewer that neither types nor changes the window size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from tmux_sessions.api.context import get_context
from tmux_sessions.api.deps import identify, origin_problem
from tmux_sessions.frames import FrameError, parse_frame
from tmux_sessions.models import MAX_INPUT_BYTES, InputFrame
from tmux_sessions.sessions import UnknownSessionError
from tmux_sessions.terminal import InputOverflowError, PtyClient
from tmux_sessions.tmux import TmuxError, TmuxUnavailableError, subprocess_environment
from tmux_sessions.unavailable import retry_after_header, unavailable_detail

router = APIRouter(tags=["terminal"])
log = logging.getLogger(__name__)
READ_ONLY_MESSAGE = FrameError("this viewer is read-only (mode=view); input is ignored")
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013
# How often an open terminal checks whether its session's command has exited unnoticed.
EXIT_CHECK_SECONDS = 2.0


async def deny(
    websocket: WebSocket,
    status: int,
    detail: str,
    *,
    close_code: int = CLOSE_POLICY,
    headers: dict[str, str] | None = None,
) -> None:
    """Refuse the handshake with an HTTP status and ``{"detail": ...}``; a server without
    the denial-response extension closes with ``close_code`` instead."""
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:
        await websocket.close(code=close_code, reason=detail[:120])


def _size(value: str | None, default: int) -> int:
    if value is not None and value.isdigit() and 1 <= int(value) <= 1000:
        return int(value)
    return default


@router.websocket("/ws/sessions/{session_id}")
async def terminal(websocket: WebSocket, session_id: str) -> None:
    context = get_context(websocket)
    identity = identify(websocket, context)
    if identity is None:
        await deny(websocket, 401, "Log in first (POST /api/auth/login).")
        return
    problem = origin_problem(websocket, context, required=not identity.via_token)
    if problem:
        await deny(websocket, 403, f"Refused: {problem}.")
        return
    mode = websocket.query_params.get("mode", "interactive")
    if mode not in ("interactive", "view"):
        await deny(websocket, 400, "mode must be 'interactive' or 'view'.")
        return
    try:
        record = await context.sessions.get(session_id, alive_only=True)
    except UnknownSessionError:
        await deny(websocket, 404, f"No live session {session_id!r}.")
        return
    except TmuxUnavailableError as error:
        log.warning("refused a terminal with 503: %s", error)
        detail = unavailable_detail(error)
        await deny(
            websocket, 503, detail, close_code=CLOSE_SERVICE_RESTART, headers=retry_after_header()
        )
        return
    except TmuxError as error:
        await deny(websocket, 502, f"tmux refused: {error}", close_code=CLOSE_INTERNAL_ERROR)
        return
    assert record.tmux_id is not None
    read_only = mode == "view"
    client = PtyClient(
        context.tmux.attach_command(record.tmux_id, read_only=read_only),
        cols=_size(websocket.query_params.get("cols"), 80),
        rows=_size(websocket.query_params.get("rows"), 24),
        env=subprocess_environment(),
        buffer_limit=context.settings.client_buffer_bytes,
    )
    await client.start()
    exit_check = asyncio.create_task(
        context.sessions.finish_when_exited(record.tmux_id, interval=EXIT_CHECK_SECONDS)
    )
    try:
        await websocket.accept()
        await TerminalBridge(websocket, client, read_only=read_only).run()
    finally:
        exit_check.cancel()
        await asyncio.wait({exit_check})
        if not exit_check.cancelled() and exit_check.exception() is not None:
            log.warning("the exit check of a terminal failed: %s", exit_check.exception())
        await client.close()


class TerminalBridge:
    """Moves bytes between one WebSocket and one pty client until either side ends."""

    def __init__(self, websocket: WebSocket, client: PtyClient, *, read_only: bool) -> None:
        self.websocket = websocket
        self.client = client
        self.read_only = read_only
        self._send_lock = asyncio.Lock()

    async def run(self) -> None:
        output = asyncio.create_task(self._pump_output())
        incoming = asyncio.create_task(self._pump_input())
        done, pending = await asyncio.wait({output, incoming}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, WebSocketDisconnect):
                log.warning("terminal connection ended: %s", error)
        if output in done:
            await self._close(1000, "session ended")

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)

    async def _send_error(self, error: FrameError) -> None:
        async with self._send_lock:
            await self.websocket.send_text(error.to_json())

    async def _pump_output(self) -> None:
        while (data := await self.client.read()) is not None:
            async with self._send_lock:
                await self.websocket.send_bytes(data)

    async def _pump_input(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self._send_error(FrameError("binary frames are not accepted; send JSON text"))
                continue
            if len(text) > MAX_INPUT_BYTES // 4 and len(text.encode()) > MAX_INPUT_BYTES:
                await self._close(CLOSE_TOO_BIG, f"frame over {MAX_INPUT_BYTES} bytes")
                return
            frame = parse_frame(text)
            if isinstance(frame, FrameError):
                await self._send_error(frame)
            elif isinstance(frame, InputFrame):
                if self.read_only:
                    await self._send_error(READ_ONLY_MESSAGE)
                    continue
                try:
                    self.client.write(frame.data.encode())
                except InputOverflowError as error:
                    await self._close(CLOSE_TRY_AGAIN_LATER, str(error))
                    return
            else:
                self.client.resize(frame.cols, frame.rows)
