"""Plane source: REST API v1 with cursor pagination, rate-limit pacing and retries.

Polling is incremental: work items are listed newest-updated first (``order_by=-updated_at``) and
paging stops at the stored high-water mark, so a project where nothing changed costs one request.
States are resolved by their group (``backlog``, ``unstarted``, ``started``, ``completed``,
``cancelled``), never by a display name, unless a name is configured explicitly.

Example::

    client = PlaneClient(credentials, metrics)
    source = PlaneSource(client, projects=["WEB"])
    result = await source.fetch_changes(marks={})
"""

from __future__ import annotations

import asyncio
import html
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx

from orchestrator.core.config import PlaneCredentials
from orchestrator.metrics import Metrics
from orchestrator.models import TicketRecord, UpstreamTicket
from orchestrator.sources.base import SourceError, SyncResult

log = logging.getLogger(__name__)

PAGE_SIZE = 100
PRIORITIES = {"urgent", "high", "medium", "low", "none"}
TAG_PATTERN = re.compile(r"<[^>]+>")
BLOCK_END_PATTERN = re.compile(r"</(p|div|li|h[1-6]|pre|blockquote)>|<br\s*/?>", re.IGNORECASE)


def html_to_text(markup: str) -> str:
    """Plain text of Plane's description HTML (the dashboard shows text, never markup).

    >>> html_to_text("<p>Fix &amp; test</p><p>now</p>")
    'Fix & test\\nnow'
    """
    text = BLOCK_END_PATTERN.sub("\n", markup)
    return html.unescape(TAG_PATTERN.sub("", text)).strip()


def summary_to_html(summary: str) -> str:
    """Comment HTML for a completion summary: escaped, line breaks kept.

    >>> summary_to_html("a < b\\nok")
    '<p>a &lt; b<br>ok</p>'
    """
    return "<p>" + "<br>".join(html.escape(line) for line in summary.splitlines()) + "</p>"


def completion_html(ticket: TicketRecord, summary: str) -> str:
    """Comment HTML for a completion: the summary, then the change on the ticket's branch
    (its commits as short hash and subject, the diffstat), every text HTML-escaped.

    >>> from orchestrator.models import Commit
    >>> ticket = TicketRecord(id="x", identifier="W-1", title="t", source="plane",
    ...     branch="aiwf/W-1", commits=[Commit(sha="ab" * 20, subject="W-1: <t>")],
    ...     diffstat=" a | 1 +")
    >>> completion_html(ticket, "done")  # doctest: +NORMALIZE_WHITESPACE
    '<p>done</p><p>Branch: <code>aiwf/W-1</code></p><ul><li><code>abababa</code> W-1:
    &lt;t&gt;</li></ul><pre><code> a | 1 +</code></pre>'
    """
    parts = [summary_to_html(summary)]
    if ticket.branch is not None:
        parts.append(f"<p>Branch: <code>{html.escape(ticket.branch)}</code></p>")
    if ticket.commits:
        items = "".join(
            f"<li><code>{html.escape(commit.sha[:7])}</code> {html.escape(commit.subject)}</li>"
            for commit in ticket.commits
        )
        parts.append(f"<ul>{items}</ul>")
    if ticket.diffstat:
        parts.append(f"<pre><code>{html.escape(ticket.diffstat)}</code></pre>")
    if ticket.change_error:
        parts.append(f"<p>The change was not recorded: {html.escape(ticket.change_error)}</p>")
    return "".join(parts)


class PlaneError(SourceError):
    """Plane answered with an error that retrying will not fix, or retries ran out."""


class PlaneClient:
    """HTTP client for Plane's API that paces itself by the rate-limit headers.

    Every request carries ``X-API-Key``. A 429 waits until ``X-RateLimit-Reset`` (or
    ``Retry-After``) plus jitter; 5xx and connection errors back off exponentially with full
    jitter. When ``X-RateLimit-Remaining`` reaches zero the next request waits for the reset
    instead of spending a 429. The key is never logged.
    """

    def __init__(
        self,
        credentials: PlaneCredentials,
        metrics: Metrics,
        *,
        max_attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timeout: float = 20.0,
    ) -> None:
        self.credentials = credentials
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._remaining: int | None = None
        self._reset_at = 0.0
        self._http = httpx.AsyncClient(
            base_url=credentials.api_url,
            headers={"X-API-Key": credentials.api_key, "Accept": "application/json"},
            timeout=timeout,
        )
        self.request_count = 0

    def workspace_path(self, suffix: str) -> str:
        return f"/workspaces/{self.credentials.workspace_slug}/{suffix.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> Any:
        """Send one logical request, retrying what is transient; return the decoded JSON body."""
        attempt = 0
        while True:
            await self._wait_for_budget()
            attempt += 1
            self.request_count += 1
            try:
                response = await self._http.request(method, path, params=params, json=json)
            except httpx.HTTPError as exc:
                self.metrics.plane_requests.labels(status="error").inc()
                if attempt >= self.max_attempts:
                    raise PlaneError(
                        f"Plane API unreachable at {self.credentials.api_url}: {exc}"
                    ) from None
                await self._sleep(self._backoff(attempt))
                continue
            self.metrics.plane_requests.labels(status=str(response.status_code)).inc()
            self._note_rate_limit(response)
            if response.status_code in accept:
                return None
            if response.status_code == 429:
                if attempt >= self.max_attempts * 2:
                    raise PlaneError("Plane API kept answering 429 (rate limited); try later")
                await self._sleep(self._rate_limit_delay(response))
                continue
            if response.status_code >= 500:
                if attempt >= self.max_attempts:
                    raise PlaneError(
                        f"Plane API answered {response.status_code} to {method} {path} "
                        f"{attempt} times"
                    )
                await self._sleep(self._backoff(attempt))
                continue
            if response.status_code in (401, 403):
                raise PlaneError(
                    f"Plane refused the API key ({response.status_code}) for {method} {path}: "
                    "check PLANE_API_KEY and its workspace access"
                )
            if response.status_code >= 400:
                raise PlaneError(
                    f"Plane answered {response.status_code} to {method} {path}: "
                    f"{response.text[:200]}"
                )
            return response.json() if response.content else None

    def _note_rate_limit(self, response: httpx.Response) -> None:
        remaining = response.headers.get("X-RateLimit-Remaining")
        reset = response.headers.get("X-RateLimit-Reset")
        if remaining is not None and remaining.strip().lstrip("-").isdigit():
            self._remaining = int(remaining)
        if reset is not None:
            try:
                value = float(reset)
            except ValueError:
                return
            self._reset_at = value if value > 1e9 else time.time() + value

    def _rate_limit_delay(self, response: httpx.Response) -> float:
        retry_after = response.headers.get("Retry-After", "")
        if retry_after.replace(".", "", 1).isdigit():
            delay = float(retry_after)
        else:
            delay = self._reset_at - time.time()
        return min(max(delay, 0.2), 120.0) + random.uniform(0, 0.5)

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))

    async def _wait_for_budget(self) -> None:
        if self._remaining is not None and self._remaining <= 0:
            delay = self._reset_at - time.time()
            if delay > 0:
                log.info("Plane rate limit budget spent; waiting %.1fs for the reset", delay)
                await self._sleep(min(delay, 120.0) + random.uniform(0, 0.5))
            self._remaining = None

    async def list_all(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every result of a list endpoint, following ``next_cursor`` (bare lists pass through)."""
        results: list[Any] = []
        cursor: str | None = None
        while True:
            query = {"per_page": PAGE_SIZE, **(params or {})}
            if cursor:
                query["cursor"] = cursor
            body = await self.request("GET", path, params=query)
            if isinstance(body, list):
                return body
            results.extend(body.get("results", []))
            cursor = body.get("next_cursor")
            if not body.get("next_page_results") or not cursor:
                return results

    async def aclose(self) -> None:
        await self._http.aclose()


@dataclass
class PlaneProject:
    id: str
    identifier: str
    states: dict[str, dict[str, Any]]
    labels: dict[str, str]


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class PlaneSource:
    """Selects work items from the configured projects (all projects when none are named)."""

    kind: Literal["plane", "local"] = "plane"

    def __init__(
        self,
        client: PlaneClient,
        *,
        projects: list[str] | None = None,
        started_state: str = "",
        completed_state: str = "",
    ) -> None:
        self.client = client
        self.wanted_projects = projects or []
        self.started_state = started_state
        self.completed_state = completed_state
        self._projects: dict[str, PlaneProject] | None = None
        base = client.credentials.api_url.removesuffix("/api/v1")
        self.web_url = base.replace("://api.plane.so", "://app.plane.so")

    async def projects(self) -> dict[str, PlaneProject]:
        """Projects to poll, with states and labels; fetched once, refreshed on unknown ids."""
        if self._projects is None:
            listed = await self.client.list_all(self.client.workspace_path("projects/"))
            chosen: dict[str, PlaneProject] = {}
            wanted = {name.lower() for name in self.wanted_projects}
            for project in listed:
                keys = {
                    str(project.get("id", "")).lower(),
                    str(project.get("identifier", "")).lower(),
                }
                if wanted and not keys & wanted:
                    continue
                chosen[project["id"]] = PlaneProject(project["id"], project["identifier"], {}, {})
            missing = wanted - {
                k for p in chosen.values() for k in (p.id.lower(), p.identifier.lower())
            }
            if missing:
                raise PlaneError(
                    "ORCHESTRATOR_PLANE_PROJECTS names unknown projects: "
                    + ", ".join(sorted(missing))
                )
            for project in chosen.values():
                await self._load_states_and_labels(project)
            self._projects = chosen
        return self._projects

    async def _load_states_and_labels(self, project: PlaneProject) -> None:
        base = f"projects/{project.id}/"
        states = await self.client.list_all(self.client.workspace_path(base + "states/"))
        project.states = {state["id"]: state for state in states}
        labels = await self.client.list_all(self.client.workspace_path(base + "labels/"))
        project.labels = {label["id"]: label["name"] for label in labels}

    async def fetch_changes(self, marks: dict[str, str]) -> SyncResult:
        projects = await self.projects()
        result = SyncResult(tickets=[], marks=dict(marks))
        for project in projects.values():
            mark = marks.get(f"plane:{project.id}")
            high_water = _parse_time(mark)
            newest = high_water
            found: list[UpstreamTicket] = []
            cursor: str | None = None
            path = self.client.workspace_path(f"projects/{project.id}/work-items/")
            while True:
                params: dict[str, Any] = {"per_page": PAGE_SIZE, "order_by": "-updated_at"}
                if cursor:
                    params["cursor"] = cursor
                body = await self.client.request("GET", path, params=params)
                items = body.get("results", []) if isinstance(body, dict) else []
                for item in items:
                    updated = _parse_time(item.get("updated_at"))
                    if high_water and updated and updated < high_water:
                        continue
                    found.append(await self._to_ticket(project, item))
                    if updated and (newest is None or updated > newest):
                        newest = updated
                last = _parse_time(items[-1].get("updated_at")) if items else None
                reached_mark = high_water is not None and (last is None or last <= high_water)
                cursor = body.get("next_cursor") if isinstance(body, dict) else None
                if reached_mark or not body.get("next_page_results") or not cursor:
                    break
            result.tickets.extend(found)
            if newest is not None:
                result.marks[f"plane:{project.id}"] = newest.isoformat()
        return result

    async def _to_ticket(self, project: PlaneProject, item: dict[str, Any]) -> UpstreamTicket:
        state_id = item.get("state")
        if isinstance(state_id, dict):
            state_id = state_id.get("id")
        if state_id and state_id not in project.states:
            await self._load_states_and_labels(project)
        state = project.states.get(str(state_id), {})
        label_ids = [lab["id"] if isinstance(lab, dict) else lab for lab in item.get("labels", [])]
        if any(label not in project.labels for label in label_ids):
            await self._load_states_and_labels(project)
        description = item.get("description_stripped") or html_to_text(
            item.get("description_html") or ""
        )
        priority = item.get("priority") or "none"
        assignees = [a["id"] if isinstance(a, dict) else a for a in item.get("assignees", [])]
        return UpstreamTicket(
            id=item["id"],
            identifier=f"{project.identifier}-{item.get('sequence_id')}",
            title=item.get("name", ""),
            description=description,
            priority=priority if priority in PRIORITIES else "none",  # type: ignore[arg-type]
            labels=[project.labels.get(label, label) for label in label_ids],
            state=state.get("name", ""),
            state_group=state.get("group"),
            url=f"{self.web_url}/{self.client.credentials.workspace_slug}/projects/"
            f"{project.id}/issues/{item['id']}",
            source="plane",
            project_id=project.id,
            assignees=[str(a) for a in assignees],
            created_at=_parse_time(item.get("created_at")),
            updated_at=_parse_time(item.get("updated_at")),
        )

    def _pick_state(self, project: PlaneProject, configured: str, group: str) -> dict[str, Any]:
        """The configured state (by name, or by group name), else the group's first state."""
        wanted = configured.strip().lower()
        states = sorted(project.states.values(), key=lambda s: float(s.get("sequence") or 0))
        if wanted:
            for state in states:
                if state.get("name", "").lower() == wanted:
                    return state
            group = wanted
        for state in states:
            if state.get("group") == group:
                return state
        raise PlaneError(
            f"project {project.identifier} has no state named or grouped {group!r}: "
            "fix ORCHESTRATOR_STARTED_STATE / ORCHESTRATOR_COMPLETED_STATE"
        )

    async def _move(self, ticket: TicketRecord, configured: str, group: str) -> None:
        projects = await self.projects()
        project = projects.get(ticket.project_id or "")
        if project is None:
            raise PlaneError(f"ticket {ticket.identifier}: its project is no longer polled")
        state = self._pick_state(project, configured, group)
        path = self.client.workspace_path(f"projects/{project.id}/work-items/{ticket.id}/")
        await self.client.request("PATCH", path, json={"state": state["id"]})
        ticket.state = state.get("name", "")
        ticket.state_group = state.get("group")

    async def mark_started(self, ticket: TicketRecord) -> None:
        await self._move(ticket, self.started_state, "started")

    async def mark_completed(self, ticket: TicketRecord) -> None:
        await self._move(ticket, self.completed_state, "completed")

    async def post_comment(self, ticket: TicketRecord, summary: str) -> None:
        """Post the summary and the change once: a retry after a lost answer is refused
        upstream with 409."""
        path = self.client.workspace_path(
            f"projects/{ticket.project_id}/work-items/{ticket.id}/comments/"
        )
        body = {
            "comment_html": completion_html(ticket, summary),
            "external_source": "aiwf-orchestrator",
            "external_id": f"{ticket.id}-{ticket.attempt}",
        }
        await self.client.request("POST", path, json=body, accept=frozenset({409}))

    async def aclose(self) -> None:
        await self.client.aclose()
