"""Plane requests per poll cycle with 5,000 work items: incremental sync vs. a full re-list.

The peer is the straightforward poller that lists every work item on every cycle (what a client
without a high-water mark must do, since Plane's list endpoint has no "updated since" filter).
Both run the real ``PlaneClient`` against the Plane-compatible test server on loopback.

    .venv/bin/python bench/orchestrator/plane_requests.py
"""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests" / "services" / "orchestrator"


def load(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", TESTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


conftest = load("conftest")
plane_double = load("plane_double")

from orchestrator.core.config import PlaneCredentials, Settings  # noqa: E402
from orchestrator.metrics import Metrics  # noqa: E402
from orchestrator.models import TicketStatus  # noqa: E402
from orchestrator.service import Orchestrator  # noqa: E402
from orchestrator.sources.plane import PlaneClient, PlaneSource  # noqa: E402
from orchestrator.store import TicketStore  # noqa: E402
from orchestrator.tmux_client import TmuxClient  # noqa: E402

TICKETS = 5000


async def main() -> None:
    key = secrets.token_hex(8)
    double = plane_double.PlaneDouble(key)  # type: ignore[attr-defined]
    project = double.add_project("BIG")
    items = [double.add_item(project, f"Item {n}") for n in range(TICKETS)]
    with conftest.ServerThread(double.app) as server, tempfile.TemporaryDirectory() as tmp:  # type: ignore[attr-defined]
        credentials = PlaneCredentials(key, double.slug, server.url + "/api/v1")
        client = PlaneClient(credentials, Metrics())
        settings = Settings(data_dir=Path(tmp), log_dir=Path(tmp), completion_dir=Path(tmp))
        orchestrator = Orchestrator(
            settings,
            TicketStore(Path(tmp)),
            PlaneSource(client),
            TmuxClient("http://127.0.0.1:9", None),
            Metrics(),
        )
        await orchestrator.open()

        def count() -> int:
            return len(double.requests)

        start = count()
        await orchestrator.sync_once()
        first = count() - start
        assert len(orchestrator.store.pending) == TICKETS
        assert all(t.status == TicketStatus.PENDING for t in orchestrator.store.pending.values())

        start = count()
        await orchestrator.sync_once()
        unchanged = count() - start

        for item in items[:10]:
            double.update_item(project, item["id"], name=item["name"] + " (edited)")
        start = count()
        await orchestrator.sync_once()
        changed = count() - start
        edited = sum(1 for t in orchestrator.store.pending.values() if t.title.endswith("(edited)"))
        assert edited == 10

        peer = PlaneClient(credentials, Metrics())
        start = count()
        listed = await peer.list_all(
            client.workspace_path(f"projects/{project.id}/work-items/"),
        )
        full = count() - start
        assert len(listed) == TICKETS
        await peer.aclose()
        await orchestrator.stop()

    print(f"work items: {TICKETS} in 1 project, 100 per page")
    print(f"first sync (projects + states + labels + pages): {first} requests")
    print(
        f"poll, nothing changed: orchestrator {unchanged}  full re-list {full}  "
        f"ratio {full / unchanged:.0f}x"
    )
    print(
        f"poll, 10 changed:      orchestrator {changed}  full re-list {full}  "
        f"ratio {full / changed:.0f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
