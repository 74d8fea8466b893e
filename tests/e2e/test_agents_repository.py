"""A branch per ticket, end to end: with a repository configured, the real Claude Code works in
the ticket's own worktree in the sandbox, and its completion ends with a commit on the ticket's
branch, recorded on the ticket (branch, commits, diffstat) and served as a reviewable patch.
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.e2e]


def _git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def origin() -> Iterator[Path]:
    """A bare repository on this host with one commit on ``main``, readable by the agent."""
    root = Path(tempfile.mkdtemp(prefix="aiwf-e2e-origin-"))
    root.chmod(0o755)
    seed = root / "seed"
    _git("init", "-q", "-b", "main", str(seed))
    (seed / "README.md").write_text("# web\n")
    _git("-C", str(seed), "add", "README.md")
    _git("-C", str(seed), "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "init")
    bare = root / "web.git"
    _git("clone", "-q", "--bare", str(seed), str(bare))
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    yield bare
    subprocess.run(["rm", "-rf", str(root)], check=True)


def test_the_agents_work_ends_as_a_commit_on_the_tickets_branch(
    wait_for: Any,
    stack_factory: Any,
    agent_overrides: Callable[[Path], dict[str, Any]],
    model_double: Any,
    origin: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("repo-stack")
    overrides = {**agent_overrides(tmp), "repository": {"url": str(origin)}}
    ticket_id = f"REPO-{secrets.token_hex(3).upper()}"
    worktree = tmp / "data" / "workspace" / ticket_id
    summary = f"Added NOTES.md ({secrets.token_hex(4)})"
    model_double.script = model_double.api.complete_ticket_script(
        str(worktree / "NOTES.md"), "notes from the agent\n", summary
    )
    with contextmanager(stack_factory)(tmp, overrides) as stack, stack.client() as client:
        stack.login(client)
        (stack.data_dir / "tickets" / f"{ticket_id}.md").write_text(
            f"---\nid: {ticket_id}\ntitle: Write the notes\nlabels: [claude]\n---\nNotes.\n"
        )

        def listed(kind: str) -> dict[str, Any] | None:
            tickets = client.get(f"/api/{kind}-tickets").json()["tickets"]
            return next((t for t in tickets if t["id"] == ticket_id), None)

        wait_for(f"{ticket_id} pending", lambda: listed("pending"))
        approved = client.post(f"/api/approve/{ticket_id}", headers={"Origin": stack.origin})
        assert approved.status_code == 200, approved.text
        done = wait_for(
            f"{ticket_id} completed with its change",
            lambda: (found := listed("completed")) and found.get("commits") and found,
        )
        branch = f"aiwf/{ticket_id}"
        assert done["branch"] == branch
        assert done["change_error"] is None
        assert len(done["commits"]) == 1
        assert "NOTES.md" in done["diffstat"]
        change = client.get(f"/api/tickets/{ticket_id}/change").json()
        assert change["branch"] == branch
        assert "+notes from the agent" in change["patch"]
        # The commit is on the ticket's branch in the worktree the agent worked in; main is
        # as it was in the origin.
        assert (worktree / "NOTES.md").read_text() == "notes from the agent\n"
        in_worktree = ["-c", "safe.directory=*", "-C", str(worktree)]
        assert _git(*in_worktree, "rev-parse", "--abbrev-ref", "HEAD") == branch
        log = _git(*in_worktree, "log", "--format=%s", "-2")
        assert log.splitlines()[0].startswith(f"{ticket_id}: Write the notes")
        assert _git("-C", str(origin), "log", "--format=%s", "main") == "init"
