"""A small tmux-sessions-compatible HTTP server driving a real tmux on a private socket.

Same routes and shapes as the tmux-sessions contract (``/health``, ``/api/sessions`` with Bearer
token); used until and beside the real service. Like the real service, a session whose command
exits stays listed as ``alive: false`` with its ``exit_status`` and ``last_output`` (the end of the
dead pane's screen, at most 4000 characters): its pane remains on exit, and the next request that
lists sessions records both and closes the tmux session. A session killed from outside has both
null. A test makes an agent fail by giving it a failing command, e.g. one that is not installed.
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


# As the real service: how much of a finished pane is kept, and how a signal becomes a status.
LAST_OUTPUT_HISTORY_LINES = 200
LAST_OUTPUT_LIMIT = 4000
SIGNAL_EXIT_BASE = 128


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

    def panes(self) -> dict[str, int | None]:
        """Session name -> exit status of its pane's command; None while it runs, 128 + N when
        signal N ended it.

        As the real service does: tmux 3.3a sometimes misses a pane process's exit (the pane
        is dead, its status unknown, the process a zombie) until another child of the server
        exits, so ``run-shell true`` makes it reap, and the panes are listed once more.
        """
        found, unreaped = self._list_panes()
        if unreaped:
            self.tmux("run-shell", "true")
            found, _ = self._list_panes()
        return found

    def _list_panes(self) -> tuple[dict[str, int | None], bool]:
        result = self.tmux(
            "list-panes",
            "-a",
            "-F",
            "#{session_name}\t#{pane_dead}\t#{pane_dead_status}\t#{pane_dead_signal}",
        )
        if result.returncode != 0:
            return {}, False
        found: dict[str, int | None] = {}
        unreaped = False
        for line in result.stdout.splitlines():
            name, dead, status, signal_number = line.split("\t")
            found[name] = None
            if dead == "1" and status:
                found[name] = int(status)
            elif dead == "1" and signal_number:
                found[name] = SIGNAL_EXIT_BASE + int(signal_number)
            elif dead == "1":
                unreaped = True
        return found, unreaped

    def live_names(self) -> set[str]:
        """Sessions whose command still runs (a finished pane kept on exit is not live)."""
        return {name for name, status in self.panes().items() if status is None}

    def record_exits(self) -> None:
        """Keep a finished pane's exit status and last screen on its session, then close it."""
        panes = self.panes()
        for session in self.sessions.values():
            status = panes.get(session["name"])
            if status is None:
                continue
            history = f"-{LAST_OUTPUT_HISTORY_LINES}"
            target = f"={session['name']}:"
            text = self.tmux("capture-pane", "-p", "-J", "-S", history, "-t", target).stdout
            screen = "\n".join(line.rstrip() for line in text.splitlines()).rstrip("\n")
            session["exit_status"] = status
            session["last_output"] = screen[-LAST_OUTPUT_LIMIT:]
            session["ended"] = True
            self.tmux("kill-session", "-t", f"={session['name']}")

    def kill_server(self) -> None:
        self.tmux("kill-server")

    def _check(self, authorization: str | None) -> None:
        if authorization != f"Bearer {self.token}":
            raise HTTPException(401, "missing or wrong token")

    def _view(self, session: dict[str, Any], live: set[str]) -> dict[str, Any]:
        public = {key: value for key, value in session.items() if key != "ended"}
        alive = not session["ended"] and session["name"] in live
        return {**public, "alive": alive, "clients": 0}

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        double = self

        @app.get("/health")
        async def health() -> PlainTextResponse:
            return PlainTextResponse("OK")

        @app.get("/api/sessions")
        async def list_sessions(authorization: str | None = Header(default=None)) -> Any:
            double._check(authorization)
            double.record_exits()
            live = double.live_names()
            return [double._view(s, live) for s in double.sessions.values()]

        @app.get("/api/sessions/{session_id}")
        async def get(session_id: str, authorization: str | None = Header(default=None)) -> Any:
            double._check(authorization)
            double.record_exits()
            session = double.sessions.get(session_id)
            if session is None:
                raise HTTPException(404, "no such session")
            return double._view(session, double.live_names())

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
                # In the same tmux command, so even a command that fails at once leaves its pane;
                # tmux's "Pane is dead" line stays out of the screen, and (as in the real
                # service) a pipe makes tmux read the command's last words before the pane dies.
                args += ["--", body.command, ";", "set-option", "-w", "remain-on-exit", "on"]
                args += [";", "set-option", "-w", "remain-on-exit-format", ""]
                args += [";", "pipe-pane", "exec cat >/dev/null"]
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
                "exit_status": None,
                "last_output": None,
                "ended": False,
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
