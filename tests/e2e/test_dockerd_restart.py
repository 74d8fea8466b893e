"""The stack survives its engine: stop dockerd, start it again, and the stack comes back by itself.

This stops the engine every other test on the host uses, so it runs only when asked:
``AIWF_E2E_RESTART_DOCKERD=1 .venv/bin/pytest tests/e2e/test_dockerd_restart.py``. dockerd is
started again exactly as this host starts it: ``dockerd > /var/log/dockerd.log 2>&1 &``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.engine,
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("AIWF_E2E_RESTART_DOCKERD") != "1",
        reason="stops the shared engine; set AIWF_E2E_RESTART_DOCKERD=1 to run it alone",
    ),
]


def _dockerd_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and Path(argv[0].decode(errors="replace")).name == "dockerd":
            return int(entry.name)
    return None


def _engine_answers() -> bool:
    from aiwf.engine.docker_client import connect

    try:
        connect(timeout=3).ping()
    except Exception:
        return False
    return True


def _wait(predicate: Any, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {limit_s:g} s")
        time.sleep(1)


@pytest.fixture(scope="module")
def restart_stack(
    engine_available: None, tmp_path_factory: pytest.TempPathFactory, stack_factory: Any
) -> Iterator[Any]:
    yield from stack_factory(tmp_path_factory.mktemp("restart"))


def test_the_stack_comes_back_after_dockerd_restarts(restart_stack: Any) -> None:
    before = restart_stack.container_ids()
    pid = _dockerd_pid()
    assert pid is not None, "dockerd is not running as a process of this host"
    os.kill(pid, signal.SIGTERM)
    _wait(lambda: not Path(f"/proc/{pid}").exists(), 120, "dockerd did not stop")
    subprocess.run("dockerd > /var/log/dockerd.log 2>&1 &", shell=True, check=True)
    _wait(_engine_answers, 120, "the engine did not answer again")

    def all_healthy() -> bool:
        rows = restart_stack.ps()
        return len(rows) == 5 and all(row["health"] == "healthy" for row in rows.values())

    _wait(all_healthy, 240, "the stack did not come back healthy")
    assert restart_stack.container_ids() == before  # the same containers, restarted by policy
    with restart_stack.client() as client:
        assert client.get("/health").text.strip() == "healthy"
    assert "nothing to do" in restart_stack.aiwf("up").stdout
