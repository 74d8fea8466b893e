"""An approved Plane work item, end to end on the real stack: the orchestrator container reads
it from the Plane-compatible double on this host (``host.docker.internal``), the real Claude Code
completes it in the sandbox, and the work item gets its comment and its completed state, once.
"""

from __future__ import annotations

import importlib.util
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import uvicorn

pytestmark = [pytest.mark.engine, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


def _plane_double() -> ModuleType:
    name = "aiwf_e2e_plane_double"
    if name not in sys.modules:
        path = ROOT / "tests" / "services" / "orchestrator" / "plane_double.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class _Served:
    """The Plane double served by uvicorn on every address of this machine (the stack's
    orchestrator reaches it as ``host.docker.internal``)."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="0.0.0.0", port=0, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    def __enter__(self) -> _Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the Plane double did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def plane() -> Iterator[tuple[Any, int]]:
    double = _plane_double().PlaneDouble("plane_api_" + secrets.token_hex(8))
    with _Served(double.app) as served:
        yield double, served.port


def test_a_plane_work_item_is_completed_by_the_agent_and_reported_once(
    wait_for: Any,
    stack_factory: Any,
    agent_overrides: Callable[[Path], dict[str, Any]],
    model_double: Any,
    plane: tuple[Any, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    double, port = plane
    project = double.add_project("WEB")
    item = double.add_item(project, "Write the release notes")
    tmp = tmp_path_factory.mktemp("plane-stack")
    key_file = tmp / "plane-key"
    key_file.write_text(double.api_key)
    overrides = {
        **agent_overrides(tmp),
        "services": {
            "orchestrator": {
                "poll_interval_seconds": 5,
                "ticket_source": "plane",
                "plane": {
                    "api_url": f"http://host.docker.internal:{port}/api/v1",
                    "workspace_slug": double.slug,
                    "api_key_file": str(key_file),
                },
            }
        },
    }
    work_file = tmp / "data" / "workspace" / "RELEASE-NOTES.md"
    summary = f"Wrote RELEASE-NOTES.md ({secrets.token_hex(4)})"
    model_double.script = model_double.api.complete_ticket_script(
        str(work_file), "# Release notes\n", summary
    )
    with contextmanager(stack_factory)(tmp, overrides) as stack, stack.client() as client:
        stack.login(client)

        def listed(kind: str, identifier: str) -> dict[str, Any] | None:
            tickets = client.get(f"/api/{kind}-tickets").json()["tickets"]
            return next((t for t in tickets if t["identifier"] == identifier), None)

        ticket = wait_for("WEB-1 pending", lambda: listed("pending", "WEB-1"))
        approved = client.post(f"/api/approve/{ticket['id']}", headers={"Origin": stack.origin})
        assert approved.status_code == 200, approved.text
        done = wait_for(
            "WEB-1 completed and reported",
            lambda: (
                (found := listed("completed", "WEB-1"))
                and found["tracker_sync"]["state"] == "ok"
                and found
            ),
        )
        assert done["summary"] == summary
        assert work_file.read_text() == "# Release notes\n"
        comments = double.projects[project.id].comments.get(item["id"], [])
        assert len(comments) == 1, comments
        assert summary in comments[0]["comment_html"]
        assert double.group_of(project, item["id"]) == "completed"
        # A restarted orchestrator syncs again and sends nothing twice.
        polls = double.count("/work-items/")
        stack.aiwf("restart", "orchestrator")
        wait_for("a sync after the restart", lambda: double.count("/work-items/") > polls)
        assert double.count("/comments/", "POST") == 1
        assert len(double.projects[project.id].comments.get(item["id"], [])) == 1
