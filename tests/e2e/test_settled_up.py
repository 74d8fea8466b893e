"""A repeated ``aiwf up`` on a settled stack is answered from its record; any change is noticed.

Runs against the session's real stack. Each change below must make the next ``up`` take the full
path (the replay answers None), and that full ``up`` must leave the stack settled again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ROOT, Stack

pytestmark = [pytest.mark.engine, pytest.mark.e2e]

REPLAY = (
    "import json, sys\n"
    "from aiwf.engine.settled import replay\n"
    "print(json.dumps(replay(sys.argv[1:])))\n"
)


def replayed(stack: Stack, *options: str) -> list[str] | None:
    """What ``aiwf -i INVENTORY up`` would answer without loading the CLI (None: full path),
    asked from the same folder and environment :meth:`Stack.aiwf` runs ``aiwf`` with."""
    result = subprocess.run(
        [sys.executable, "-c", REPLAY, "-i", str(stack.inventory), "up", *options],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **stack.env},
    )
    answer: list[str] | None = json.loads(result.stdout)
    return answer


def settle(stack: Stack) -> list[str]:
    """Run ``up`` until a run changes nothing (and so leaves a record); the lines it printed."""
    for _ in range(3):
        output: str = stack.aiwf("up").stdout
        if replayed(stack) is not None:
            return output.splitlines()
    raise AssertionError(f"the stack does not settle:\n{output}")


def test_a_settled_up_answers_from_its_record(stack: Stack) -> None:
    printed = settle(stack)
    assert replayed(stack) == printed
    ids = stack.container_ids()

    again = stack.aiwf("up")  # through the console script's entry: the replay
    assert again.stdout.splitlines() == printed
    assert stack.container_ids() == ids

    assert replayed(stack, "--full") is None
    (stack.data_dir / "rendered" / "compose.yaml").unlink()
    assert replayed(stack) is None
    assert stack.aiwf("up", "--full").stdout.splitlines() == printed  # and records for ``up``
    assert replayed(stack) == printed


def _touch_inventory(stack: Stack) -> None:
    stack.write_inventory()  # same settings, a new file


def _stop_dashboard(stack: Stack) -> None:
    from aiwf.engine.docker_client import connect

    connect().containers.get(f"{stack.project}-dashboard").stop()


def _remove_rendered_compose(stack: Stack) -> None:
    (stack.data_dir / "rendered" / "compose.yaml").unlink()


def _loosen_a_secret(stack: Stack) -> None:
    (stack.data_dir / "secrets" / "session_key").chmod(0o644)


@pytest.mark.parametrize(
    "change",
    [_touch_inventory, _stop_dashboard, _remove_rendered_compose, _loosen_a_secret],
    ids=lambda change: change.__name__.strip("_"),
)
def test_a_change_makes_the_next_up_check_everything(
    stack: Stack, change: Callable[[Stack], None]
) -> None:
    settle(stack)
    assert replayed(stack) is not None

    change(stack)
    assert replayed(stack) is None

    assert "nothing to do" in settle(stack)[-2]
    assert (stack.data_dir / "secrets" / "session_key").stat().st_mode & 0o777 == 0o600
    assert all(row["health"] in ("healthy", None) for row in stack.ps().values())


def test_an_up_in_progress_is_never_answered_for(stack: Stack) -> None:
    settle(stack)
    lock = stack.data_dir / "deploy.lock"
    lock.write_text('{"pid": 1, "command": "aiwf up"}')
    try:
        assert replayed(stack) is None
    finally:
        lock.write_text("")
    assert replayed(stack) is not None


def test_a_record_that_cannot_be_kept_costs_only_the_shortcut(stack: Stack, tmp_path: Path) -> None:
    settle(stack)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")

    result = stack.aiwf("up", env={"XDG_CACHE_HOME": str(blocker)})

    assert "nothing to do" in result.stdout
    assert "cannot keep the record of this run" in result.stderr
