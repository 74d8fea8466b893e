"""Client of the tmux-sessions service (contract in DESIGN.md), authenticated by Bearer token."""

from __future__ import annotations

from typing import Any

import httpx


class TmuxServiceError(Exception):
    """The tmux-sessions service is unreachable or refused a request; one sentence.

    ``permanent`` marks a refusal that asking again will not change (a 422 for a working
    directory that does not exist), as opposed to an outage worth waiting out.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class TmuxClient:
    """Creates, lists and kills sessions.

    Example::

        client = TmuxClient("http://tmux-sessions:5001", token="...")
        session = await client.create("claude-WEB-1-1-20261125-153000", "claude", "/w", {}, "id")
    """

    def __init__(self, base_url: str, token: str | None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TmuxServiceError(
                f"tmux-sessions service at {self.base_url} unreachable: {exc}"
            ) from None
        if response.status_code in (401, 403):
            raise TmuxServiceError(
                f"tmux-sessions refused the service token ({response.status_code}): "
                "check ORCHESTRATOR_TMUX_TOKEN_FILE"
            )
        return response

    async def healthy(self) -> bool:
        try:
            response = await self._http.get("/health", timeout=3.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def create(
        self, name: str, command: str, cwd: str, env: dict[str, str], ticket_id: str | None = None
    ) -> dict[str, Any]:
        """Start a session; ``ticket_id`` marks an agent's (a sandbox job has none, so it is
        never taken for the agent of its ticket)."""
        body: dict[str, Any] = {"name": name, "command": command, "cwd": cwd, "env": env}
        if ticket_id is not None:
            body["ticket_id"] = ticket_id
        response = await self._call("POST", "/api/sessions", json=body)
        if response.status_code not in (200, 201):
            raise TmuxServiceError(
                f"tmux-sessions could not start {name} ({response.status_code}): "
                f"{response.text[:200]}",
                permanent=response.status_code in (400, 404, 409, 422),
            )
        session: dict[str, Any] = response.json()
        return session

    async def list(self) -> list[dict[str, Any]]:
        response = await self._call("GET", "/api/sessions")
        if response.status_code != 200:
            raise TmuxServiceError(f"tmux-sessions list failed ({response.status_code})")
        sessions: list[dict[str, Any]] = response.json()
        return sessions

    async def kill(self, session_id: str) -> None:
        response = await self._call("DELETE", f"/api/sessions/{session_id}")
        if response.status_code not in (200, 204, 404):
            raise TmuxServiceError(f"tmux-sessions could not kill {session_id}")

    async def aclose(self) -> None:
        await self._http.aclose()
