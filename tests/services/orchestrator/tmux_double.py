"""A small tmux-sessions-compatible HTTP server driving a real tmux on a private socket.

Same routes and shapes as the tmux-sessions contract (``/health``, ``/api/sessions`` with Bearer
token); used until and beside the real service.
"""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel


class CreateSession(BaseModel):
    name: str | None = None
    command: str | None = None
    cwd: str | None = None
    env: dict[str, str] = {}
    ticket_id: str | None = None
    cols: int = 200
    rows: int = 50


class TmuxDouble:
    def __init__(self, socket: Path, token: str) -> None:
        self.socket = socket
        self.token = token
        self.sessions: dict[str, dict[str, Any]] = {}
        self.app = self._build_app()

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-f", "/dev/null", "-S", str(self.socket), *args],
            capture_output=True,
            text=True,
            check=False,
        )

    def live_names(self) -> set[str]:
        result = self.tmux("list-sessions", "-F", "#{session_name}")
        return set(result.stdout.split()) if result.returncode == 0 else set()

    def kill_server(self) -> None:
        self.tmux("kill-server")

    def _check(self, authorization: str | None) -> None:
        if authorization != f"Bearer {self.token}":
            raise HTTPException(401, "missing or wrong token")

    def _view(self, session: dict[str, Any], live: set[str]) -> dict[str, Any]:
        return {**session, "alive": session["name"] in live, "clients": 0}

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        double = self

        @app.get("/health")
        async def health() -> PlainTextResponse:
            return PlainTextResponse("OK")

        @app.get("/api/sessions")
        async def list_sessions(authorization: str | None = Header(default=None)) -> Any:
            double._check(authorization)
            live = double.live_names()
            return [double._view(s, live) for s in double.sessions.values()]

        @app.post("/api/sessions", status_code=201)
        async def create(
            body: CreateSession, authorization: str | None = Header(default=None)
        ) -> Any:
            double._check(authorization)
            if body.cwd and not Path(body.cwd).is_dir():
                raise HTTPException(422, f"cwd {body.cwd} is not a directory")
            name = body.name or f"s-{uuid.uuid4().hex[:8]}"
            args = ["new-session", "-d", "-s", name, "-x", str(body.cols), "-y", str(body.rows)]
            if body.cwd:
                args += ["-c", body.cwd]
            for key, value in body.env.items():
                args += ["-e", f"{key}={value}"]
            if body.command:
                args.append(body.command)
            result = double.tmux(*args)
            if result.returncode != 0:
                raise HTTPException(400, f"tmux refused: {result.stderr.strip()}")
            session_id = f"sess-{uuid.uuid4().hex[:12]}"
            session: dict[str, Any] = {
                "id": session_id,
                "name": name,
                "command": body.command or "",
                "cwd": body.cwd or "",
                "created_at": datetime.now(UTC).isoformat(),
                "ticket_id": body.ticket_id,
            }
            double.sessions[session_id] = session
            return double._view(session, double.live_names())

        @app.delete("/api/sessions/{session_id}", status_code=204)
        async def delete(
            session_id: str, authorization: str | None = Header(default=None)
        ) -> Response:
            double._check(authorization)
            session = double.sessions.pop(session_id, None)
            if session is None:
                raise HTTPException(404, "no such session")
            double.tmux("kill-session", "-t", session["name"])
            return Response(status_code=204)

        return app
