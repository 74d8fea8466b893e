"""Real agents on a real stack: approve-to-first-request latency, memory per agent, concurrency.

Why this benchmark: the issue asks how fast an approved ticket gets its agent working (target:
p50 of at most 2 s from the approval to the agent's first model request), what one running
agent costs in memory, and how many agents a 2-core, 8 GB machine carries. Only the real
Claude Code in the real sandbox answers that, so this script brings up a whole stack with
``aiwf up`` (its own project name, data dir and loopback ports), points its agents at the
Messages API double of ``tests/support/messages_api.py`` and measures from the outside:

1. **approve -> first request**: ``POST /api/approve/{id}`` through nginx, logged in, one ticket
   at a time; the time until the double receives that ticket's first main-loop request (the
   ticket id is found in the request's messages). Each agent then completes its ticket (the
   double's ``complete_ticket_script``) before the next approval. The time is broken down with
   what can be observed: ``approved_at`` and ``started_at`` of the ticket (orchestrator),
   ``created_at`` of its session (tmux-sessions, right after ``tmux new-session``), the start
   time of the ``claude`` process (``/proc/<pid>/stat``) and the double's ``received_at``.
2. **idle agents**: those agents, idle at their prompt after completing, each measured from
   ``/proc`` (RSS, PSS and private memory of every host process whose executable is
   ``.../claude``), and the sandbox container's cgroup (memory, CPU) and ``docker stats``.
3. **concurrent agents**: K tickets approved at once (K = 2, 4, 8, 12) while the double streams
   its answers slowly (``event_delay``), so every agent stays busy turn after turn; measured:
   time to each first request (and whether it came within a deadline), per-agent and total
   memory, the CPU the sandbox used, host CPU busy and CPU pressure (PSI), the load average and
   how long an agent's turn took against the double's pace.

Every container, volume, image tag and folder the script made is removed at the end, also on
failure or Ctrl-C. Run as root (it reads ``/proc`` of the sandbox's processes and the engine's
cgroups) with a Docker engine::

    .venv/bin/python bench/agents/bench_agents.py [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
#: The memory budget the issue asks about (read as 8 GiB).
BUDGET_BYTES = 8 * 1024 * MIB
#: The issue's target for the median approve-to-first-request time.
TARGET_P50_S = 2.0
#: Services of the stack other than the sandbox; their memory is a fixed cost of the machine.
OTHER_SERVICES = ("nginx", "dashboard", "tmux-sessions", "orchestrator")


def load_messages_api() -> ModuleType:
    """``tests/support/messages_api.py``, loaded by path: ``tests`` is not a package."""
    name = "aiwf_bench_messages_api"
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "tests" / "support" / "messages_api.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


messages_api = load_messages_api()


# --------------------------------------------------------------------------- small helpers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def insecure_tls() -> ssl.SSLContext:
    """The stack's certificate is self-signed; the benchmark measures time, not the chain."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default): p95 of 10 values lies
    between the 9th and the 10th, so one slow approval shows instead of being rounded away."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def epoch(value: str | None) -> float | None:
    """An ISO timestamp from the API as seconds since the epoch (the containers share the
    host's clock, so these compare with ``time.time()`` here)."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def wait_until(what: str, probe: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    """``probe()`` once it is truthy; ``None`` after ``timeout`` seconds (the caller records
    the miss and goes on: one stuck agent must not cost the other figures)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            print(f"  ! timed out after {timeout:.0f} s waiting for {what}", file=sys.stderr)
            return None
        time.sleep(every)


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return statistics.fmean(items) if items else None


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """One stack of its own (project, data dir, ports), driven through the real ``aiwf``."""

    root: Path
    project: str
    settings: dict[str, Any]

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.py"

    @property
    def data_dir(self) -> Path:
        return Path(self.settings["paths"]["data_dir"])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.settings['ports']['https']}"

    @property
    def origin(self) -> str:
        """The Origin nginx and the services accept for state-changing requests."""
        return f"https://localhost:{self.settings['ports']['https']}"

    def write_inventory(self) -> None:
        self.inventory.write_text(f"hosts = [('@local', {{'aiwf': {self.settings!r}}})]\n")

    def aiwf(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """The ``aiwf`` command a user runs, on this stack's inventory (as the e2e tests do)."""
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from aiwf.cli.entry import main; main()",
                "-i",
                str(self.inventory),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "200"},
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"aiwf {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def container_ids(self) -> dict[str, str]:
        rows = json.loads(self.aiwf("ps", "--json").stdout)
        return {row["service"]: row["id"] for row in rows}

    def login(self) -> httpx.Client:
        """A client of nginx with the admin's session cookie."""
        password = (self.data_dir / "secrets" / "admin_password").read_text().strip()
        client = httpx.Client(base_url=self.base_url, verify=insecure_tls(), timeout=60)
        response = client.post(
            "/api/auth/login",
            json={"username": "admin", "password": password},
            headers={"Origin": self.origin},
        )
        if response.status_code != 204:
            raise RuntimeError(f"login failed: {response.status_code} {response.text}")
        return client

    def remove(self) -> None:
        """Containers, network, volumes, this project's image tags (not the shared cache
        images other stacks reuse), then the folder: what ``remove_stack`` of the e2e tests
        does."""
        self.write_inventory()
        self.aiwf("down", "--volumes", "--yes", check=False, timeout=300)
        from aiwf.engine.docker_client import connect

        client = connect()
        for image in client.api.images(name=f"{self.project}-*"):
            for tag in image.get("RepoTags") or ():
                if tag.startswith(f"{self.project}-"):
                    client.api.remove_image(tag, noprune=True)
        shutil.rmtree(self.root, ignore_errors=True)


def make_stack(root: Path, key: str, base_url: str, max_active: int) -> Stack:
    project = f"aiwfbench{secrets.token_hex(3)}"
    key_file = root / "agent-api-key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    settings: dict[str, Any] = {
        "project": project,
        "ports": {"bind": "127.0.0.1", "http": free_port(), "https": free_port()},
        "paths": {
            "data_dir": str(root / "data"),
            "tmux_socket_dir": str(root / "tmux"),
            "home": str(root / "home"),
            "certs_dir": str(root / "certs"),
        },
        "services": {
            # The shortest poll, so the tickets written below turn pending quickly.
            "orchestrator": {"poll_interval_seconds": 5, "max_active": max_active}
        },
        "agent": {
            "api_key_file": str(key_file),
            "base_url": base_url,
            # An API error ends a turn at once instead of after minutes of retries.
            "environment": {"CLAUDE_CODE_MAX_RETRIES": "0"},
        },
    }
    stack = Stack(root, project, settings)
    stack.write_inventory()
    return stack


# --------------------------------------------------------------------------- the model double


class AgentScripts:
    """The double's script: answers each main-loop request by the ticket it belongs to.

    Why per ticket: the sequential phase needs agents that complete their ticket (and then sit
    idle, to be measured), the concurrent phase agents that keep streaming, and both run on
    one double. It also records, per ticket, when each main-loop request arrived: the figures
    are computed from these ``received_at`` times.
    """

    def __init__(self, prefix: str, workspace: Path, notes_file: Path, busy_blocks: int) -> None:
        self.pattern = re.compile(re.escape(prefix) + r"-[A-Z]\d{2}(?:-\d{2})?")
        self.workspace = workspace
        self.notes_file = notes_file
        self.busy_blocks = busy_blocks
        self.busy: set[str] = set()
        self.arrivals: dict[str, list[float]] = {}
        self.user_agent: str | None = None
        self._completers: dict[str, Callable[[Any], Any]] = {}
        self._lock = threading.Lock()

    def ticket_of(self, payload: dict[str, Any]) -> str | None:
        for chunk in messages_api.user_texts(payload):
            found = self.pattern.search(chunk)
            if found:
                return found.group(0)
        return None

    def __call__(self, request: Any) -> Any:
        ticket = self.ticket_of(request.payload)
        if ticket is None:
            return messages_api.text("No ticket id in this conversation.")
        with self._lock:
            self.arrivals.setdefault(ticket, []).append(request.received_at)
            self.user_agent = self.user_agent or request.headers.get("user-agent")
            busy = ticket in self.busy
            completer = self._completers.get(ticket)
            if completer is None and not busy:
                completer = messages_api.complete_ticket_script(
                    str(self.workspace / f"bench-work-{ticket}.txt"),
                    f"work of {ticket}\n",
                    f"Benchmark agent {ticket} wrote its work file",
                )
                self._completers[ticket] = completer
        if busy:
            return self.busy_turn(request.turn)
        assert completer is not None
        return completer(request)

    def busy_turn(self, turn: int) -> Any:
        """A long streamed answer ending in a read-only tool call, so the agent sends the
        next request as soon as this one has streamed: it stays busy, and never asks for a
        permission (reading in the workspace needs none). It stops after 200 turns."""
        if turn >= 200:
            return messages_api.text("Stopping here.")
        paragraph = (
            f"Turn {turn}: reading the notes again and weighing the next change. " * 6
        ).strip()
        blocks = [messages_api.text(paragraph) for _ in range(self.busy_blocks)]
        blocks.append(messages_api.tool_use("Read", {"file_path": str(self.notes_file)}))
        return messages_api.Turn(*blocks)

    def events_per_busy_turn(self) -> int:
        """SSE events of one busy turn (see ``_stream_events`` of the double): start, ping,
        5 per text block (start, 3 deltas, stop), 6 for the tool call, delta, stop."""
        return 2 + 5 * self.busy_blocks + 6 + 2

    def first(self, ticket: str) -> float | None:
        with self._lock:
            times = self.arrivals.get(ticket)
            return times[0] if times else None

    def count(self, ticket: str) -> int:
        with self._lock:
            return len(self.arrivals.get(ticket, ()))

    def times(self, ticket: str) -> list[float]:
        with self._lock:
            return list(self.arrivals.get(ticket, ()))


def quiet_connection_resets(server: Any) -> None:
    """Drop socketserver's traceback for a connection the client reset.

    Why: ending an agent (its session killed) while it holds a keep-alive connection to the
    double resets that connection before a request line is read; socketserver prints a full
    traceback for it, which is expected here and would bury the benchmark's output. Other
    errors still print."""
    httpd = getattr(server, "_httpd", None)
    if httpd is None:
        return
    default = httpd.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            default(request, client_address)

    httpd.handle_error = handle_error


# --------------------------------------------------------------------------- /proc and cgroups


@dataclass(frozen=True)
class AgentProcess:
    """One host process running Claude Code for one of our tickets."""

    pid: int
    ticket: str
    started_at: float
    cpu_s: float
    rss_kib: int
    pss_kib: int | None
    private_kib: int | None


def _boot_epoch() -> float:
    """When the machine booted, in epoch seconds, to sub-millisecond precision.

    Why not ``btime`` of /proc/stat: it is whole seconds, too coarse for a 2 s budget. A
    process's start time counts clock ticks of CLOCK_BOOTTIME."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def _smaps_rollup(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return values
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name.strip()] = int(parts[0])
    return values


def agent_processes(prefix: str, *, memory: bool = True) -> list[AgentProcess]:
    """Every process whose executable ends in ``/claude`` and whose ``TICKET_ID`` is one of
    ours (other stacks on this engine may run agents too), seen from the host's /proc."""
    boot = _boot_epoch()
    found: list[AgentProcess] = []
    marker = f"TICKET_ID={prefix}-".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if not os.readlink(f"/proc/{pid}/exe").endswith("/claude"):
                continue
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        ticket = next(
            (item.decode().partition("=")[2] for item in environ if item.startswith(marker)), None
        )
        if ticket is None:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # Fields 14, 15 (utime, stime) and 22 (starttime) of proc(5); the list starts at 3.
        cpu_s = (int(fields[11]) + int(fields[12])) / CLK_TCK
        started_at = boot + int(fields[19]) / CLK_TCK
        rss = next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
        )
        rollup = _smaps_rollup(pid) if memory else {}
        private = None
        if "Private_Clean" in rollup:
            private = rollup["Private_Clean"] + rollup.get("Private_Dirty", 0)
        found.append(AgentProcess(pid, ticket, started_at, cpu_s, rss, rollup.get("Pss"), private))
    return found


@dataclass(frozen=True)
class CgroupSample:
    """A container's memory (bytes) and CPU time (seconds) from its cgroup."""

    usage: int
    working_set: int
    anon: int
    cpu_s: float


class Cgroup:
    """A container's cgroup, v1 (this host: cgroupfs driver) or v2, found from its init's
    ``/proc/<pid>/cgroup``.

    ``working_set`` is usage minus inactive file pages: the figure ``docker stats`` shows,
    and what the kernel cannot simply drop under pressure.
    """

    def __init__(self, pid: int) -> None:
        self.memory_dir: Path
        self.cpu_dir: Path
        self.v2 = False
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        controllers = {}
        for line in lines:
            _, names, path = line.split(":", 2)
            for name in names.split(","):
                controllers[name] = path
        if "memory" in controllers:
            self.memory_dir = Path("/sys/fs/cgroup/memory") / controllers["memory"].lstrip("/")
            cpu_root = "cpu,cpuacct" if Path("/sys/fs/cgroup/cpu,cpuacct").exists() else "cpuacct"
            self.cpu_dir = Path("/sys/fs/cgroup") / cpu_root / controllers["cpuacct"].lstrip("/")
        else:
            self.v2 = True
            self.memory_dir = self.cpu_dir = Path("/sys/fs/cgroup") / controllers[""].lstrip("/")

    def sample(self) -> CgroupSample:
        stat = {}
        for line in (self.memory_dir / "memory.stat").read_text().splitlines():
            name, value = line.split()
            stat[name] = int(value)
        if self.v2:
            usage = int((self.memory_dir / "memory.current").read_text())
            inactive, anon = stat.get("inactive_file", 0), stat.get("anon", 0)
            cpu_stat = (self.cpu_dir / "cpu.stat").read_text().split()
            cpu_s = int(cpu_stat[cpu_stat.index("usage_usec") + 1]) / 1e6
        else:
            usage = int((self.memory_dir / "memory.usage_in_bytes").read_text())
            inactive, anon = stat.get("total_inactive_file", 0), stat.get("total_rss", 0)
            cpu_s = int((self.cpu_dir / "cpuacct.usage").read_text()) / 1e9
        return CgroupSample(usage, max(0, usage - inactive), anon, cpu_s)


def docker_stats_mib(container_id: str) -> float | None:
    """``docker stats --no-stream``'s memory figure for one container (one-shot API call)."""
    from aiwf.engine.docker_client import connect

    try:
        stats = connect().api.stats(container_id, stream=False, one_shot=True)
    except Exception as exc:
        print(f"  ! docker stats failed: {exc}", file=sys.stderr)
        return None
    memory = stats.get("memory_stats") or {}
    inner = memory.get("stats") or {}
    inactive = inner.get("total_inactive_file", inner.get("inactive_file", 0))
    return (int(memory.get("usage", 0)) - int(inactive)) / MIB


@dataclass(frozen=True)
class HostSample:
    """Host-wide CPU counters: busy and total jiffies, and CPU pressure stall time."""

    taken: float
    busy: int
    total: int
    pressure_us: int | None


def host_sample() -> HostSample:
    parts = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    pressure = None
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        pressure = int(some.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        pass
    return HostSample(time.monotonic(), sum(parts[:8]) - idle, sum(parts[:8]), pressure)


def host_usage(start: HostSample, end: HostSample) -> dict[str, float | None]:
    """Share of the host's CPU time that was busy, and of wall time some task waited for a
    CPU (PSI "some"), between two samples."""
    busy = (end.busy - start.busy) / max(1, end.total - start.total)
    pressure = None
    if start.pressure_us is not None and end.pressure_us is not None:
        pressure = (end.pressure_us - start.pressure_us) / 1e6 / (end.taken - start.taken)
    return {
        "host_cpu_busy_pct": rounded(100 * busy, 1),
        "cpu_pressure_some_pct": rounded(None if pressure is None else 100 * pressure, 1),
    }


def memory_summary(processes: Sequence[AgentProcess]) -> dict[str, Any]:
    """Mean and total RSS, PSS and private memory (MiB) of the agents' processes.

    Why three: RSS counts the shared Claude Code binary in full for every process; PSS
    shares it out among them (their sum is what they really take together); private memory
    is what one more agent adds at least."""

    def stats(values: list[int | None]) -> dict[str, float | None]:
        known = [value for value in values if value is not None]
        if not known:
            return {"mean_mib": None, "max_mib": None, "total_mib": None}
        return {
            "mean_mib": rounded(statistics.fmean(known) / 1024, 1),
            "max_mib": rounded(max(known) / 1024, 1),
            "total_mib": rounded(sum(known) / 1024, 1),
        }

    return {
        "processes": len(processes),
        "tickets": len({process.ticket for process in processes}),
        "rss": stats([process.rss_kib for process in processes]),
        "pss": stats([process.pss_kib for process in processes]),
        "private": stats([process.private_kib for process in processes]),
    }


# --------------------------------------------------------------------------- the benchmark


@dataclass
class Bench:
    """The measurements, on one stack, one double and one logged-in client."""

    stack: Stack
    double: Any
    scripts: AgentScripts
    prefix: str
    client: httpx.Client
    sandbox: Cgroup
    sandbox_id: str
    others: dict[str, Cgroup]
    result: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ tickets
    def write_tickets(self, ids: Iterable[str]) -> None:
        folder = self.stack.data_dir / "tickets"
        for ticket_id in ids:
            body = (
                f"---\nid: {ticket_id}\ntitle: Benchmark ticket\nlabels: [claude]\n"
                f"priority: high\n---\nA benchmark ticket.\n\n"
                "Run /complete with a short summary when done.\n"
            )
            (folder / f"{ticket_id}.md").write_text(body)

    def tickets(self, kind: str) -> dict[str, dict[str, Any]]:
        body = self.client.get(f"/api/{kind}-tickets").json()
        return {ticket["id"]: ticket for ticket in body["tickets"]}

    def approve(self, client: httpx.Client, ticket_id: str) -> tuple[float, float, dict[str, Any]]:
        """POST the approval; (sent at, answered at, the ticket it answered)."""
        sent = time.time()
        response = client.post(f"/api/approve/{ticket_id}", headers={"Origin": self.stack.origin})
        answered = time.time()
        if response.status_code != 200:
            print(f"  ! approve {ticket_id}: {response.status_code} {response.text}")
            return sent, answered, {}
        return sent, answered, dict(response.json()["ticket"])

    def session_created(self, session_id: str | None) -> float | None:
        if not session_id:
            return None
        for session in self.client.get("/api/sessions").json():
            if session.get("id") == session_id:
                return epoch(session.get("created_at"))
        return None

    def end_agents(self, tickets: Sequence[str]) -> int:
        """Delete the tickets (their sessions are killed with them) or, for completed ones,
        their sessions, then wait for their processes to go; returns how many stayed."""
        completed = self.tickets("completed")
        for ticket_id in tickets:
            if ticket_id in completed:
                session = completed[ticket_id].get("session_id")
                if session:
                    self.client.delete(
                        f"/api/sessions/{session}", headers={"Origin": self.stack.origin}
                    )
            else:
                self.client.delete(
                    f"/api/tickets/{ticket_id}", headers={"Origin": self.stack.origin}
                )
        wanted = set(tickets)

        def gone() -> bool:
            left = agent_processes(self.prefix, memory=False)
            return not any(process.ticket in wanted for process in left)

        wait_until("the agents' processes to exit", gone, timeout=30, every=0.25)
        left = [p for p in agent_processes(self.prefix, memory=False) if p.ticket in wanted]
        time.sleep(1)  # let the kernel give back the exited processes' memory
        return len(left)

    def finished(self, ticket_id: str) -> bool:
        """Completed, and the agent's closing turn asked for: it is idle at its prompt now."""
        return ticket_id in self.tickets("completed") and self.scripts.count(ticket_id) >= 4

    # ------------------------------------------------------------------ memory
    def stack_memory(self) -> dict[str, Any]:
        sandbox = self.sandbox.sample()
        others = {name: cgroup.sample().working_set for name, cgroup in self.others.items()}
        return {
            "sandbox_working_set_mib": rounded(sandbox.working_set / MIB, 1),
            "sandbox_usage_mib": rounded(sandbox.usage / MIB, 1),
            "sandbox_anon_mib": rounded(sandbox.anon / MIB, 1),
            "sandbox_docker_stats_mib": rounded(docker_stats_mib(self.sandbox_id), 1),
            "other_services_mib": {name: rounded(value / MIB, 1) for name, value in others.items()},
            "other_services_total_mib": rounded(sum(others.values()) / MIB, 1),
        }

    # ------------------------------------------------------------------ 1. latency
    def sequential(self, ids: Sequence[str], deadline: float) -> list[dict[str, Any]]:
        """One approval at a time; each agent completes its ticket before the next."""
        rows = []
        for ticket_id in ids:
            sent, answered, ticket = self.approve(self.client, ticket_id)
            first = wait_until(
                f"{ticket_id}'s first request", partial(self.scripts.first, ticket_id), deadline
            )
            ours = [p for p in agent_processes(self.prefix) if p.ticket == ticket_id]
            process = min(ours, key=lambda p: p.started_at) if ours else None
            created = self.session_created(ticket.get("session_id"))
            approved, started = epoch(ticket.get("approved_at")), epoch(ticket.get("started_at"))
            row: dict[str, Any] = {
                "ticket": ticket_id,
                "approve_to_first_request_s": rounded(first - sent if first else None),
                "post_to_approved_s": rounded(approved - sent if approved else None),
                "approved_to_session_created_s": rounded(
                    created - approved if created and approved else None
                ),
                "session_created_to_started_s": rounded(
                    started - created if started and created else None
                ),
                "approve_response_s": rounded(answered - sent),
                "approved_to_process_start_s": rounded(
                    process.started_at - approved if process and approved else None
                ),
                "session_created_to_process_start_s": rounded(
                    process.started_at - created if process and created else None
                ),
                "process_start_to_first_request_s": rounded(
                    first - process.started_at if process and first else None
                ),
                "process_cpu_at_first_request_s": rounded(process.cpu_s if process else None, 2),
            }
            rows.append(row)
            print(
                f"  {ticket_id}: approve -> first request {row['approve_to_first_request_s']} s "
                f"(response {row['approve_response_s']} s, process start -> request "
                f"{row['process_start_to_first_request_s']} s)",
                flush=True,
            )
            # Complete before the next approval: then the measured agent starts on a quiet
            # stack, and stays as an idle agent for the memory figures.
            wait_until(
                f"{ticket_id} completed",
                partial(self.finished, ticket_id),
                timeout=60,
                every=0.25,
            )
            time.sleep(0.5)
        return rows

    # ------------------------------------------------------------------ 2. idle memory
    def idle(self, tickets: Sequence[str], cold: CgroupSample, window: float) -> dict[str, Any]:
        """Agents idle at their prompt after completing: memory per agent, and what they
        still cost in CPU (the TUI keeps running). Then they are ended, and the sandbox
        measured again without agents.

        Why twice without agents: before any agent ran (``cold``) the Claude Code binary is not
        in the sandbox's page cache; after, it stays there, charged to the sandbox, shared by
        every agent. The growth per agent is taken against that warm figure, so the binary
        counts once, in the fixed cost, not once per agent."""
        time.sleep(3)
        processes = [p for p in agent_processes(self.prefix) if p.ticket in set(tickets)]
        before, host_before = self.sandbox.sample(), host_sample()
        time.sleep(window)
        after, host_after = self.sandbox.sample(), host_sample()
        agents = len({p.ticket for p in processes})
        row: dict[str, Any] = {
            "agents": agents,
            **memory_summary(processes),
            **self.stack_memory(),
            "sandbox_cpu_cores": rounded((after.cpu_s - before.cpu_s) / window, 3),
            **host_usage(host_before, host_after),
            "load_average": os.getloadavg(),
        }
        row["processes_left_after_end"] = self.end_agents(tickets)
        warm = self.sandbox.sample()
        row["sandbox_without_agents_cold_mib"] = rounded(cold.working_set / MIB, 1)
        row["sandbox_without_agents_mib"] = rounded(warm.working_set / MIB, 1)
        row["marginal_per_agent_mib"] = rounded(
            (after.working_set - warm.working_set) / max(1, agents) / MIB, 1
        )
        return row

    # ------------------------------------------------------------------ 3. concurrency
    def concurrent(
        self, k: int, ids: Sequence[str], deadline: float, window: float, delay: float
    ) -> dict[str, Any]:
        """K approvals at once while the double streams slowly; bounded by ``deadline`` for
        the first requests and ``window`` seconds of busy measurement."""
        baseline = self.sandbox.sample()
        with self.scripts._lock:
            self.scripts.busy.update(ids)
        self.double.event_delay = delay
        barrier = threading.Barrier(k)
        cookies = self.client.cookies

        def one(ticket_id: str) -> tuple[float, float, dict[str, Any]]:
            with httpx.Client(
                base_url=self.stack.base_url, verify=insecure_tls(), timeout=120, cookies=cookies
            ) as client:
                barrier.wait(timeout=30)
                return self.approve(client, ticket_id)

        host_before = host_sample()
        cpu_before = baseline.cpu_s
        with ThreadPoolExecutor(max_workers=k) as pool:
            answers = dict(zip(ids, pool.map(one, ids), strict=True))
        sent = min(answer[0] for answer in answers.values())
        responses = [answer[1] - answer[0] for answer in answers.values()]

        def all_started() -> bool:
            return all(self.scripts.first(t) is not None for t in ids)

        wait_until(f"{k} first requests", all_started, timeout=deadline, every=0.1)
        firsts = {t: self.scripts.first(t) for t in ids}
        latencies = [first - answers[t][0] for t, first in firsts.items() if first is not None]
        all_in = time.time()
        startup_cpu = self.sandbox.sample().cpu_s - cpu_before
        startup_host = host_usage(host_before, host_sample())
        # Busy window: every agent streaming; sample memory every 2 s for the peak.
        counts_before = {t: self.scripts.count(t) for t in ids}
        start, host_start = self.sandbox.sample(), host_sample()
        window_start = time.time()
        peak = start.working_set
        while time.time() - window_start < window:
            time.sleep(min(2.0, max(0.0, window - (time.time() - window_start))))
            peak = max(peak, self.sandbox.sample().working_set)
        end, host_end = self.sandbox.sample(), host_sample()
        peak = max(peak, end.working_set)
        window_end = time.time()
        processes = [p for p in agent_processes(self.prefix) if p.ticket in set(ids)]
        memory = self.stack_memory()
        turns: list[int] = []
        periods: list[float] = []
        for ticket_id in ids:
            inside = [t for t in self.scripts.times(ticket_id) if window_start <= t <= window_end]
            turns.append(self.scripts.count(ticket_id) - counts_before[ticket_id])
            periods.extend(b - a for a, b in itertools.pairwise(inside))
        agents = len({p.ticket for p in processes})
        cores = (end.cpu_s - start.cpu_s) / (window_end - window_start)
        pace = delay * (self.scripts.events_per_busy_turn() - 1)
        self.double.event_delay = 0.0
        left = self.end_agents(ids)
        row: dict[str, Any] = {
            "k": k,
            "approvals_answered_s": {
                "median": rounded(statistics.median(responses)),
                "max": rounded(max(responses)),
            },
            "first_request_s": {
                "p50": rounded(percentile(latencies, 0.5)),
                "max": rounded(max(latencies) if latencies else None),
                "within_deadline": len(latencies),
                "deadline_s": deadline,
            },
            "all_first_requests_after_s": rounded(all_in - sent if len(latencies) == k else None),
            "startup_sandbox_cpu_s": rounded(startup_cpu, 2),
            "startup_sandbox_cpu_s_per_agent": rounded(startup_cpu / k, 2),
            "startup_host": startup_host,
            "running_agents": agents,
            **memory_summary(processes),
            **memory,
            "sandbox_peak_working_set_mib": rounded(peak / MIB, 1),
            "sandbox_working_set_before_mib": rounded(baseline.working_set / MIB, 1),
            "marginal_per_agent_mib": rounded(
                (end.working_set - baseline.working_set) / max(1, agents) / MIB, 1
            ),
            "window_s": round(window_end - window_start, 1),
            "sandbox_cpu_cores": rounded(cores),
            "sandbox_cpu_cores_per_agent": rounded(cores / max(1, agents), 4),
            **host_usage(host_start, host_end),
            "load_average": os.getloadavg(),
            "turns_in_window_mean": rounded(mean(turns), 1),
            "turn_period_mean_s": rounded(mean(periods), 2),
            "turn_period_of_the_double_s": round(pace, 2),
            "processes_left_after_end": left,
        }
        print(
            f"  K={k}: first request p50 {row['first_request_s']['p50']} s, max "
            f"{row['first_request_s']['max']} s; {row['marginal_per_agent_mib']} MiB/agent; "
            f"sandbox {row['sandbox_cpu_cores']} cores; turn {row['turn_period_mean_s']} s "
            f"(double {row['turn_period_of_the_double_s']} s)",
            flush=True,
        )
        return row


# --------------------------------------------------------------------------- summary


def capacity(result: dict[str, Any], cores: int) -> dict[str, Any]:
    """How many agents fit in 8 GiB, from measured per-agent memory, and what the CPU says.

    The fixed cost is the other four containers, the sandbox without agents and the pages
    every agent shares (RSS minus private memory: the Claude Code binary's text and the
    libraries, resident once whatever the number of agents; part of it is charged to the
    cgroup that first read the binary, not to the sandbox). Per agent: the sandbox's growth
    per agent, with idle agents and at the largest K (busy). CPU: the sandbox's CPU per busy
    agent (median over K) and the CPU a start takes (the sequential phase's process CPU at
    its first request)."""
    concurrent = [row for row in result["concurrent"] if row["running_agents"]]
    idle = result["idle"]
    shared_mib = (idle["rss"]["mean_mib"] or 0) - (idle["private"]["mean_mib"] or 0)
    fixed_mib = (
        (idle["other_services_total_mib"] or 0)
        + (idle["sandbox_without_agents_mib"] or 0)
        + max(0.0, shared_mib)
    )
    budget_mib = BUDGET_BYTES / MIB
    out: dict[str, Any] = {
        "budget_mib": budget_mib,
        "shared_pages_mib": rounded(shared_mib, 1),
        "fixed_mib": rounded(fixed_mib, 1),
    }

    def fits(per_agent: float | None) -> int | None:
        if not per_agent or per_agent <= 0:
            return None
        return int((budget_mib - fixed_mib) // per_agent)

    out["idle_per_agent_mib"] = idle["marginal_per_agent_mib"]
    out["idle_agents_in_budget"] = fits(idle["marginal_per_agent_mib"])
    out["idle_cpu_cores_per_agent"] = rounded(
        (idle["sandbox_cpu_cores"] or 0) / max(1, idle["agents"]), 4
    )
    out["startup_cpu_s_per_agent"] = result["latency"]["breakdown_median_s"].get(
        "process_cpu_at_first_request_s"
    )
    if concurrent:
        largest = max(concurrent, key=lambda row: row["k"])
        out["busy_per_agent_mib"] = largest["marginal_per_agent_mib"]
        out["busy_per_agent_pss_mib"] = largest["pss"]["mean_mib"]
        out["busy_agents_in_budget"] = fits(largest["marginal_per_agent_mib"])
        per_agent_cores = statistics.median(
            row["sandbox_cpu_cores_per_agent"] or 0 for row in concurrent
        )
        out["busy_cpu_cores_per_agent"] = rounded(per_agent_cores)
        out["busy_agents_to_fill_cores"] = (
            rounded(cores / per_agent_cores, 1) if per_agent_cores else None
        )
    return out


def markdown(result: dict[str, Any]) -> str:
    """The figures as Markdown tables, for the terminal and the README."""
    lines: list[str] = []
    latency = result["latency"]
    lines += [
        f"### Approve -> first model request ({latency['n']} approvals, one at a time)",
        "",
        "| p50 | p95 | min | max | target p50 | met |",
        "|---|---|---|---|---|---|",
        f"| {latency['p50_s']} s | {latency['p95_s']} s | {latency['min_s']} s | "
        f"{latency['max_s']} s | {TARGET_P50_S} s | {'yes' if latency['met'] else 'no'} |",
        "",
        "| step (median) | time |",
        "|---|---|",
    ]
    for name, value in latency["breakdown_median_s"].items():
        lines.append(f"| {name} | {value} s |")
    idle = result["idle"]
    lines += [
        "",
        f"### {idle['agents']} agents idle at their prompt",
        "",
        "| per agent RSS | PSS | private | sandbox growth / agent | sandbox total | "
        "sandbox without agents | docker stats | sandbox CPU |",
        "|---|---|---|---|---|---|---|---|",
        f"| {idle['rss']['mean_mib']} MiB | {idle['pss']['mean_mib']} MiB | "
        f"{idle['private']['mean_mib']} MiB | {idle['marginal_per_agent_mib']} MiB | "
        f"{idle['sandbox_working_set_mib']} MiB | "
        f"{idle['sandbox_without_agents_mib']} MiB | "
        f"{idle['sandbox_docker_stats_mib']} MiB | {idle['sandbox_cpu_cores']} cores |",
        "",
        "### K agents approved at once, streaming",
        "",
        "| K | first req p50 | max | in deadline | RSS/agent | PSS/agent | private/agent | "
        "sandbox growth/agent | sandbox peak | sandbox CPU | host busy | CPU pressure | load 1m | "
        "turn (double's pace) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["concurrent"]:
        first = row["first_request_s"]
        lines.append(
            f"| {row['k']} | {first['p50']} s | {first['max']} s | "
            f"{first['within_deadline']}/{row['k']} | {row['rss']['mean_mib']} MiB | "
            f"{row['pss']['mean_mib']} MiB | {row['private']['mean_mib']} MiB | "
            f"{row['marginal_per_agent_mib']} MiB | {row['sandbox_peak_working_set_mib']} MiB | "
            f"{row['sandbox_cpu_cores']} cores | {row['host_cpu_busy_pct']} % | "
            f"{row['cpu_pressure_some_pct']} % | {row['load_average'][0]:.2f} | "
            f"{row['turn_period_mean_s']} s ({row['turn_period_of_the_double_s']} s) |"
        )
    cap = result["capacity"]
    lines += [
        "",
        "### Capacity",
        "",
        f"- fixed cost (other services, sandbox without agents, {cap['shared_pages_mib']} MiB "
        f"of pages all agents share): {cap['fixed_mib']} MiB",
        f"- idle agents in {cap['budget_mib'] / 1024:.0f} GiB: {cap['idle_agents_in_budget']} "
        f"({cap['idle_per_agent_mib']} MiB each; {cap['idle_cpu_cores_per_agent']} cores each)",
        f"- busy agents in {cap['budget_mib'] / 1024:.0f} GiB: "
        f"{cap.get('busy_agents_in_budget')} ({cap.get('busy_per_agent_mib')} MiB each)",
        f"- CPU: a busy agent uses {cap.get('busy_cpu_cores_per_agent')} cores at the double's "
        f"pace (median over K); {cap.get('busy_agents_to_fill_cores')} busy agents fill "
        f"{result['host']['cores']} cores; a start costs {cap.get('startup_cpu_s_per_agent')} "
        "CPU-s (process CPU at its first request, median of the sequential approvals)",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def _on_term(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as an exception, so the ``finally`` that removes the stack runs."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--approvals", type=int, default=10, help="sequential approvals")
    parser.add_argument("--concurrency", default="2,4,8,12", help="K values, comma-separated")
    parser.add_argument("--event-delay", type=float, default=0.1, help="s between SSE events")
    parser.add_argument("--busy-blocks", type=int, default=8, help="text blocks per busy turn")
    parser.add_argument("--window", type=float, default=20.0, help="busy measurement, s")
    parser.add_argument("--idle-window", type=float, default=5.0, help="idle CPU window, s")
    parser.add_argument("--deadline", type=float, default=60.0, help="first request deadline, s")
    parser.add_argument("--json", type=Path, help="also write the results here")
    options = parser.parse_args(argv)
    ks = [int(value) for value in options.concurrency.split(",") if value.strip()]
    if os.geteuid() != 0:
        print("run as root: the agents' /proc entries and the cgroups must be readable")
        return 2
    signal.signal(signal.SIGTERM, _on_term)
    started = time.time()
    key = f"sk-ant-api03-bench-{secrets.token_hex(16)}"
    prefix = f"BENCH{secrets.token_hex(3).upper()}"
    root = Path(tempfile.mkdtemp(prefix="aiwf-bench-agents-"))
    sequential_ids = [f"{prefix}-S{n:02d}" for n in range(1, options.approvals + 1)]
    concurrent_ids = {k: [f"{prefix}-C{k:02d}-{n:02d}" for n in range(1, k + 1)] for k in ks}
    workspace = root / "data" / "workspace"
    scripts = AgentScripts(prefix, workspace, workspace / "bench-notes.txt", options.busy_blocks)
    double = messages_api.MessagesApiServer(scripts, host="0.0.0.0", expected_api_key=key)
    stack: Stack | None = None
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "cores": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "kernel": os.uname().release,
            "load_average_at_start": os.getloadavg(),
        },
        "options": vars(options) | {"json": str(options.json) if options.json else None},
    }
    try:
        double.start()
        quiet_connection_resets(double)
        stack = make_stack(
            root, key, f"http://host.docker.internal:{double.port}", max(ks) + options.approvals
        )
        print(f"stack {stack.project}: aiwf up ...", flush=True)
        up_started = time.monotonic()
        stack.aiwf("up", timeout=1200)
        result["aiwf_up_s"] = round(time.monotonic() - up_started, 1)
        from aiwf.engine.docker_client import connect

        ids = stack.container_ids()
        api = connect().api
        cgroups = {
            name: Cgroup(int(api.inspect_container(ids[name])["State"]["Pid"]))
            for name in ("sandbox", *OTHER_SERVICES)
        }
        notes = workspace / "bench-notes.txt"
        notes.write_text("Notes the busy agents read between their long answers.\n")
        notes.chmod(0o644)
        client = stack.login()
        bench = Bench(
            stack,
            double,
            scripts,
            prefix,
            client,
            cgroups.pop("sandbox"),
            ids["sandbox"],
            cgroups,
        )
        every_id = sequential_ids + [t for k in ks for t in concurrent_ids[k]]
        bench.write_tickets(every_id)
        print(f"waiting for {len(every_id)} tickets to be pending ...", flush=True)
        if not wait_until(
            "every ticket pending",
            lambda: set(every_id) <= set(bench.tickets("pending")),
            timeout=60,
            every=0.5,
        ):
            raise RuntimeError("the tickets did not turn pending")
        cold = bench.sandbox.sample()

        print(f"1. {options.approvals} approvals, one at a time", flush=True)
        rows = bench.sequential(sequential_ids, options.deadline)
        values = [r["approve_to_first_request_s"] for r in rows if r["approve_to_first_request_s"]]
        breakdown_keys = [
            "post_to_approved_s",
            "approved_to_session_created_s",
            "session_created_to_started_s",
            "approve_response_s",
            "approved_to_process_start_s",
            "session_created_to_process_start_s",
            "process_start_to_first_request_s",
            "process_cpu_at_first_request_s",
        ]
        result["latency"] = {
            "n": len(values),
            "missed": len(rows) - len(values),
            "p50_s": rounded(percentile(values, 0.5)),
            "p95_s": rounded(percentile(values, 0.95)),
            "min_s": rounded(min(values) if values else None),
            "max_s": rounded(max(values) if values else None),
            "target_p50_s": TARGET_P50_S,
            "met": bool(values) and percentile(values, 0.5) <= TARGET_P50_S,
            "breakdown_median_s": {
                name: rounded(statistics.median(r[name] for r in rows if r[name] is not None))
                for name in breakdown_keys
                if any(r[name] is not None for r in rows)
            },
            "samples": rows,
            "claude_code_user_agent": scripts.user_agent,
        }

        print("2. idle agents", flush=True)
        result["idle"] = bench.idle(sequential_ids, cold, options.idle_window)

        print(f"3. concurrent agents: K = {ks}", flush=True)
        result["concurrent"] = [
            bench.concurrent(
                k, concurrent_ids[k], options.deadline, options.window, options.event_delay
            )
            for k in ks
        ]
        result["capacity"] = capacity(result, os.cpu_count() or 1)
        result["host"]["load_average_at_end"] = os.getloadavg()
        result["duration_s"] = round(time.time() - started, 1)
        client.close()
    except KeyboardInterrupt:
        print("interrupted; removing the stack", file=sys.stderr)
        return 130
    finally:
        double.stop()
        if stack is not None:
            print(f"removing stack {stack.project} ...", flush=True)
            stack.remove()
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(markdown(result))
    if options.json:
        options.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwritten to {options.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
