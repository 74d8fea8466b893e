"""``agent.runtime: host``, end to end: no sandbox container; the agents' tmux server runs on
this host as the agent's own non-root user, and an approved ticket's real Claude Code completes
there, talking to the model double on loopback.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.e2e]


@pytest.fixture
def host_stack(
    stack_factory: Any, agent_overrides: Callable[[Path], dict[str, Any]], model_double: Any
) -> Iterator[Any]:
    uid = 24000 + secrets.randbelow(1000)
    user = f"aiwfa{secrets.token_hex(3)}"
    # The agent's user must reach the stack's folders; pytest's temp folder is root's alone.
    root = Path(tempfile.mkdtemp(prefix="aiwf-e2e-host-"))
    root.chmod(0o755)
    overrides = agent_overrides(root)
    overrides["agent"].update(
        runtime="host",
        uid=uid,
        gid=uid,
        user=user,
        base_url=f"http://127.0.0.1:{model_double.server.port}",
    )
    socket = root / "tmux" / "default"
    try:
        with contextmanager(stack_factory)(root, overrides) as stack:
            yield stack
    finally:
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True)
        # The agent's processes (its tmux server, an agent left at its prompt) end with it.
        subprocess.run(["pkill", "-KILL", "-u", str(uid)], capture_output=True)
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", user], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_a_ticket_runs_as_the_agents_own_user_on_the_host(
    wait_for: Any, host_stack: Any, model_double: Any
) -> None:
    stack = host_stack
    uid = stack.settings["agent"]["uid"]
    assert "sandbox" not in stack.ps()
    work_file = stack.data_dir / "workspace" / "host-work.txt"
    summary = f"Wrote host-work.txt ({secrets.token_hex(4)})"
    model_double.script = model_double.api.complete_ticket_script(
        str(work_file), "made on the host\n", summary
    )
    ticket_id = f"HOST-{secrets.token_hex(3).upper()}"
    (stack.data_dir / "tickets" / f"{ticket_id}.md").write_text(
        f"---\nid: {ticket_id}\ntitle: Work on the host\nlabels: [claude]\n---\nWork.\n"
    )
    with stack.client() as client:
        stack.login(client)

        def listed(kind: str) -> dict[str, Any] | None:
            tickets = client.get(f"/api/{kind}-tickets").json()["tickets"]
            return next((t for t in tickets if t["id"] == ticket_id), None)

        wait_for(f"{ticket_id} pending", lambda: listed("pending"))
        approved = client.post(f"/api/approve/{ticket_id}", headers={"Origin": stack.origin})
        assert approved.status_code == 200, approved.text
        done = wait_for(f"{ticket_id} completed", lambda: listed("completed"))
        assert done["summary"] == summary
    assert work_file.read_text() == "made on the host\n"
    assert work_file.stat().st_uid == uid
    # The agent is a process of this host (its mount namespace), as the agent's uid.
    host_ns = os.readlink("/proc/self/ns/mnt")
    agents = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "exe").endswith("/claude"):
                status = (entry / "status").read_text()
                owner = next(line.split()[1] for line in status.splitlines() if line[:4] == "Uid:")
                agents.append((owner, os.readlink(entry / "ns" / "mnt")))
        except OSError:
            continue
    assert (str(uid), host_ns) in agents, agents
    assert not any(owner == "0" for owner, ns in agents if ns == host_ns)
    health = stack.aiwf("health", "--json", check=False).stdout
    assert f"answers in the host as uid {uid}" in health
