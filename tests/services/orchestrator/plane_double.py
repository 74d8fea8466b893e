"""A Plane-compatible HTTP API for tests: the real client code talks to it over loopback.

Routes follow Plane's REST API v1 (``work-items`` and the older ``issues`` paths), with
``X-API-Key`` checks, cursor pagination (``per_page``, ``cursor``, ``next_cursor``,
``next_page_results``), states with groups, labels, comments with ``external_id`` de-duplication,
rate-limit headers with 429 answers, and an injectable 500 every N requests.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

STATE_GROUPS = [
    ("Backlog", "backlog"),
    ("Todo", "unstarted"),
    ("In Progress", "started"),
    ("In Review", "started"),
    ("Done", "completed"),
    ("Cancelled", "cancelled"),
]


@dataclass
class PlaneProjectData:
    id: str
    identifier: str
    states: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    next_sequence: int = 1


class PlaneDouble:
    """In-memory Plane workspace plus the knobs tests turn (rate limit, failures)."""

    def __init__(self, api_key: str, slug: str = "acme") -> None:
        self.api_key = api_key
        self.slug = slug
        self.projects: dict[str, PlaneProjectData] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.rate_limit = 10_000
        self.window_seconds = 1.0
        self._window_start = time.time()
        self._window_used = 0
        self.fail_every = 0
        self.refuse_updates = False
        self._counter = 0
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)
        self.lock = threading.Lock()
        self.app = self._build_app()

    # -------------------------------------------------------------- data helpers
    def tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return str(self._clock.isoformat()).replace("+00:00", "Z")

    def add_project(self, identifier: str) -> PlaneProjectData:
        states = [
            {"id": str(uuid.uuid4()), "name": name, "group": group, "sequence": 1000.0 * (i + 1)}
            for i, (name, group) in enumerate(STATE_GROUPS)
        ]
        labels = [{"id": str(uuid.uuid4()), "name": name} for name in ("claude", "bug", "frontend")]
        project = PlaneProjectData(str(uuid.uuid4()), identifier, states, labels)
        self.projects[project.id] = project
        return project

    def state_id(self, project: PlaneProjectData, group: str) -> str:
        return str(next(s["id"] for s in project.states if s["group"] == group))

    def label_id(self, project: PlaneProjectData, name: str) -> str:
        return str(next(label["id"] for label in project.labels if label["name"] == name))

    def add_item(
        self,
        project: PlaneProjectData,
        name: str,
        *,
        group: str = "unstarted",
        labels: tuple[str, ...] = ("claude",),
        description_html: str = "<p>Do the thing &amp; test it.</p>",
    ) -> dict[str, Any]:
        with self.lock:
            stamp = self.tick()
            item: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "name": name,
                "description_html": description_html,
                "description_stripped": None,
                "priority": "medium",
                "state": self.state_id(project, group),
                "labels": [self.label_id(project, label) for label in labels],
                "assignees": [],
                "sequence_id": project.next_sequence,
                "project": project.id,
                "created_at": stamp,
                "updated_at": stamp,
            }
            project.next_sequence += 1
            project.items[item["id"]] = item
            return item

    def update_item(self, project: PlaneProjectData, item_id: str, **changes: Any) -> None:
        with self.lock:
            project.items[item_id].update(changes)
            project.items[item_id]["updated_at"] = self.tick()

    def group_of(self, project: PlaneProjectData, item_id: str) -> str:
        state_id = project.items[item_id]["state"]
        return str(next(s["group"] for s in project.states if s["id"] == state_id))

    def count(self, path_part: str, method: str = "GET") -> int:
        return sum(1 for m, p, _ in self.requests if m == method and path_part in p)

    # -------------------------------------------------------------- HTTP
    def _paginate(self, request: Request, rows: list[dict[str, Any]]) -> dict[str, Any]:
        per_page = min(int(request.query_params.get("per_page", "100")), 100)
        cursor = request.query_params.get("cursor", f"{per_page}:0:0")
        _, page, _ = (int(part) for part in cursor.split(":"))
        chunk = rows[page * per_page : (page + 1) * per_page]
        more = (page + 1) * per_page < len(rows)
        return {
            "grouped_by": None,
            "sub_grouped_by": None,
            "total_count": len(rows),
            "next_cursor": f"{per_page}:{page + 1}:0",
            "prev_cursor": f"{per_page}:{max(page - 1, 0)}:0",
            "next_page_results": more,
            "prev_page_results": page > 0,
            "count": len(chunk),
            "total_pages": (len(rows) + per_page - 1) // per_page,
            "total_results": len(rows),
            "extra_stats": None,
            "results": chunk,
        }

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        double = self

        @app.middleware("http")
        async def gatekeeper(request: Request, call_next: Any) -> Any:
            path = request.url.path
            with double.lock:
                double._counter += 1
                now = time.time()
                if now - double._window_start >= double.window_seconds:
                    double._window_start, double._window_used = now, 0
                reset = int(double._window_start + double.window_seconds) + 1
                headers = {"X-RateLimit-Reset": str(reset)}
                if request.headers.get("X-API-Key") != double.api_key:
                    double.requests.append((request.method, path, 401))
                    return JSONResponse({"error": "Invalid API key"}, 401)
                if double._window_used >= double.rate_limit:
                    double.requests.append((request.method, path, 429))
                    headers["X-RateLimit-Remaining"] = "0"
                    return JSONResponse({"error": "Too many requests"}, 429, headers=headers)
                double._window_used += 1
                if double.fail_every and double._counter % double.fail_every == 0:
                    double.requests.append((request.method, path, 500))
                    return JSONResponse({"error": "boom"}, 500)
                headers["X-RateLimit-Remaining"] = str(double.rate_limit - double._window_used)
            response = await call_next(request)
            with double.lock:
                double.requests.append((request.method, path, response.status_code))
            for key, value in headers.items():
                response.headers[key] = value
            return response

        base = "/api/v1/workspaces/{slug}/projects"

        @app.get(base + "/")
        async def projects(request: Request, slug: str) -> Any:
            rows = [
                {"id": p.id, "identifier": p.identifier, "name": p.identifier}
                for p in double.projects.values()
            ]
            return double._paginate(request, rows)

        @app.get(base + "/{project_id}/states/")
        async def states(request: Request, slug: str, project_id: str) -> Any:
            return double._paginate(request, double.projects[project_id].states)

        @app.get(base + "/{project_id}/labels/")
        async def labels(request: Request, slug: str, project_id: str) -> Any:
            return double._paginate(request, double.projects[project_id].labels)

        for kind in ("work-items", "issues"):

            @app.get(base + "/{project_id}/" + kind + "/")
            async def list_items(request: Request, slug: str, project_id: str) -> Any:
                project = double.projects[project_id]
                with double.lock:
                    rows = [dict(item) for item in project.items.values()]
                order = request.query_params.get("order_by", "-created_at")
                key = order.lstrip("-")
                rows.sort(key=lambda row: row[key], reverse=order.startswith("-"))
                return double._paginate(request, rows)

            @app.patch(base + "/{project_id}/" + kind + "/{item_id}/")
            async def patch_item(slug: str, project_id: str, item_id: str, request: Request) -> Any:
                project = double.projects[project_id]
                if double.refuse_updates:
                    return JSONResponse({"error": "state is locked"}, 400)
                body = await request.json()
                double.update_item(project, item_id, **body)
                return project.items[item_id]

            @app.post(base + "/{project_id}/" + kind + "/{item_id}/comments/")
            async def comment(slug: str, project_id: str, item_id: str, request: Request) -> Any:
                project = double.projects[project_id]
                body = await request.json()
                existing = project.comments.setdefault(item_id, [])
                if body.get("external_id") and any(
                    c.get("external_id") == body["external_id"] for c in existing
                ):
                    return JSONResponse({"error": "duplicate external_id"}, 409)
                existing.append(body)
                return JSONResponse({"id": str(uuid.uuid4()), **body}, 201)

        return app
