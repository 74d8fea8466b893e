"""Plane sync against a Plane-compatible HTTP server: paging, incremental polls, rate limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from orchestrator.models import TicketStatus
from prometheus_client import generate_latest


def plane_settings(make_settings: Callable[..., Any], plane: Any, **extra: Any) -> Any:
    return make_settings(
        plane_api_key=plane.api_key,
        plane_workspace_slug=plane.double.slug,
        plane_api_url=plane.url,
        **extra,
    )


def fill(plane: Any, count: int, identifier: str = "WEB") -> tuple[Any, list[dict[str, Any]]]:
    project = plane.double.add_project(identifier)
    items = [plane.double.add_item(project, f"Ticket {n}") for n in range(count)]
    return project, items


async def test_first_sync_pages_through_250_tickets(
    plane: Any, make_settings: Any, make_orchestrator: Any
) -> None:
    project, items = fill(plane, 250)
    other = plane.double.add_item(project, "Not for the agent", labels=("bug",))
    started = plane.double.add_item(project, "Already running", group="started")
    orchestrator = await make_orchestrator(plane_settings(make_settings, plane))

    await orchestrator.sync_once()

    pending = orchestrator.store.pending
    assert set(pending) == {item["id"] for item in items}
    assert other["id"] not in pending and started["id"] not in pending
    assert plane.double.count("/work-items/") == 3  # 252 items, 100 per page
    ticket = pending[items[7]["id"]]
    assert ticket.identifier == f"WEB-{items[7]['sequence_id']}"
    assert ticket.description == "Do the thing & test it."
    assert ticket.labels == ["claude"]
    assert ticket.state == "Todo" and ticket.state_group == "unstarted"
    assert ticket.source == "plane" and ticket.status == TicketStatus.PENDING
    assert ticket.url is not None and items[7]["id"] in ticket.url
    saved = (orchestrator.settings.data_dir / "pending-tickets.json").read_text()
    assert saved.count('"id"') == 250


async def test_unchanged_resync_costs_one_request(
    plane: Any, make_settings: Any, make_orchestrator: Any
) -> None:
    fill(plane, 250)
    orchestrator = await make_orchestrator(plane_settings(make_settings, plane))
    await orchestrator.sync_once()
    before = len(plane.double.requests)

    await orchestrator.sync_once()

    assert len(plane.double.requests) - before == 1
    assert len(orchestrator.store.pending) == 250


async def test_sync_marks_survive_a_restart(
    plane: Any, make_settings: Any, make_orchestrator: Any
) -> None:
    fill(plane, 150)
    settings = plane_settings(make_settings, plane)
    first = await make_orchestrator(settings)
    await first.sync_once()
    second = await make_orchestrator(settings)
    before = plane.double.count("/work-items/")

    await second.sync_once()

    assert plane.double.count("/work-items/") - before == 1
    assert len(second.store.pending) == 150


async def test_updated_ticket_refreshes_pending_copy(
    plane: Any, make_settings: Any, make_orchestrator: Any
) -> None:
    project, items = fill(plane, 120)
    orchestrator = await make_orchestrator(plane_settings(make_settings, plane))
    await orchestrator.sync_once()
    target, leaving = items[3], items[4]
    plane.double.update_item(project, target["id"], name="Renamed ticket", priority="urgent")
    plane.double.update_item(
        project, leaving["id"], state=plane.double.state_id(project, "cancelled")
    )
    before = plane.double.count("/work-items/")

    await orchestrator.sync_once()

    assert plane.double.count("/work-items/") - before == 1
    refreshed = orchestrator.store.pending[target["id"]]
    assert refreshed.title == "Renamed ticket" and refreshed.priority == "urgent"
    assert leaving["id"] not in orchestrator.store.pending
    assert len(orchestrator.store.pending) == 119


async def test_rate_limit_and_server_errors_lose_and_duplicate_nothing(
    plane: Any, make_settings: Any, make_orchestrator: Any
) -> None:
    fill(plane, 250)
    plane.double.rate_limit = 2
    plane.double.window_seconds = 1.0
    plane.double.fail_every = 4
    orchestrator = await make_orchestrator(plane_settings(make_settings, plane))

    await orchestrator.sync_once()

    statuses = [status for _, _, status in plane.double.requests]
    assert 500 in statuses
    assert len(orchestrator.store.pending) == 250
    saved = (orchestrator.settings.data_dir / "pending-tickets.json").read_text()
    ids = [item["id"] for item in json.loads(saved)]
    assert len(ids) == len(set(ids)) == 250
    exposition = generate_latest(orchestrator.metrics.registry).decode()
    assert 'orchestrator_plane_requests_total{status="500"}' in exposition


async def test_a_429_is_waited_out_and_retried(
    plane: Any, make_settings: Any, make_orchestrator: Any
) -> None:
    project, items = fill(plane, 30)
    orchestrator = await make_orchestrator(plane_settings(make_settings, plane))
    await orchestrator.sync_once()
    plane.double.update_item(project, items[0]["id"], name="changed")
    plane.double.rate_limit = 0

    async def lift() -> None:
        await asyncio.sleep(1.5)
        plane.double.rate_limit = 100

    lifter = asyncio.create_task(lift())
    await orchestrator.sync_once()
    await lifter

    assert any(status == 429 for _, _, status in plane.double.requests)
    assert any(t.title == "changed" for t in orchestrator.store.pending.values())
    assert len(orchestrator.store.pending) == 30


async def test_unknown_project_is_a_clear_problem(
    plane: Any, make_settings: Any, make_orchestrator: Any
) -> None:
    fill(plane, 3)
    orchestrator = await make_orchestrator(
        plane_settings(make_settings, plane, plane_projects="NOPE")
    )

    await orchestrator.sync_once()

    assert orchestrator.store.pending == {}
    assert any("NOPE" in problem.upper() for problem in orchestrator.problems())


@pytest.mark.parametrize("bad_key", ["wrong-key"])
async def test_refused_key_is_reported_without_the_key(
    plane: Any, make_settings: Any, make_orchestrator: Any, bad_key: Any
) -> None:
    fill(plane, 3)
    settings = make_settings(
        plane_api_key=bad_key, plane_workspace_slug="acme", plane_api_url=plane.url
    )
    orchestrator = await make_orchestrator(settings)

    await orchestrator.sync_once()

    problems = " ".join(orchestrator.problems())
    assert "401" in problems and "PLANE_API_KEY" in problems
    assert bad_key not in problems
