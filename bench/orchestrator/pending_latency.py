"""``GET /api/pending-tickets`` with 1,000 pending tickets under 50 concurrent clients.

Starts the real daemon (``python -m orchestrator``) and the peer (``baseline_app.py``) as
separate processes on the same seeded data, then drives each with the same load: 50 concurrent
clients, a warm-up, then REQUESTS measured requests, first from httpx in Python, then (when
installed, Debian package apache2-utils) from ApacheBench, a C client that leaves the two cores to
the servers. Prints p50, p99 and requests per second.

    .venv/bin/python bench/orchestrator/pending_latency.py [REQUESTS]
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from orchestrator.models import TicketRecord, utcnow
from orchestrator.store import write_atomically

HERE = Path(__file__).resolve().parent
CLIENTS = 50
PENDING = 1000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def seed(data_dir: Path) -> None:
    now = utcnow()
    tickets = [
        TicketRecord(
            id=f"BENCH-{n}",
            identifier=f"BENCH-{n}",
            title=f"Benchmark ticket number {n}",
            description="A description of moderate length. " * 8,
            priority="medium",
            labels=["claude", "backend"],
            state="Todo",
            state_group="unstarted",
            source="local",
            created_at=now,
            updated_at=now,
        ).model_dump(mode="json")
        for n in range(PENDING)
    ]
    write_atomically(data_dir / "pending-tickets.json", json.dumps(tickets).encode())


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited")
        try:
            if httpx.get(url + "/api/pending-tickets", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


async def load(url: str, requests: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as client:
        first = await client.get("/api/pending-tickets")
        assert first.json()["count"] == PENDING
        expected_size = len(first.content)
        remaining = requests

        async def worker(record: bool) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await client.get("/api/pending-tickets")
                assert response.status_code == 200 and len(response.content) == expected_size
                if record:
                    latencies.append(time.perf_counter() - started)

        remaining = CLIENTS * 4
        await asyncio.gather(*(worker(False) for _ in range(CLIENTS)))
        remaining = requests
        began = time.perf_counter()
        await asyncio.gather(*(worker(True) for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - began
    return latencies, elapsed


def load_with_ab(url: str, requests: int) -> tuple[float, float, float]:
    """Drive ``url`` with ApacheBench (a C client, so the load generator costs little CPU)."""
    subprocess.run(
        ["ab", "-q", "-n", str(CLIENTS * 4), "-c", str(CLIENTS), url],
        check=True,
        capture_output=True,
    )
    output = subprocess.run(
        ["ab", "-n", str(requests), "-c", str(CLIENTS), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    failed = re.search(r"Failed requests:\s+(\d+)", output)
    assert failed is not None and failed.group(1) == "0", output
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = float(re.search(r"^\s+50%\s+(\d+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"^\s+99%\s+(\d+)", output, re.M).group(1))  # type: ignore[union-attr]
    return p50, p99, rps


def report(name: str, latencies: list[float], elapsed: float) -> float:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    rps = len(ordered) / elapsed
    print(f"{name:<14} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  {rps:7.0f} req/s")
    return rps


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        seed(data)
        daemon_port, peer_port = free_port(), free_port()
        env = {
            **os.environ,
            "ORCHESTRATOR_PORT": str(daemon_port),
            "ORCHESTRATOR_HOST": "127.0.0.1",
            "ORCHESTRATOR_DATA_DIR": str(data),
            "ORCHESTRATOR_LOG_DIR": str(Path(tmp) / "logs"),
            "ORCHESTRATOR_COMPLETION_DIR": str(Path(tmp) / "completions"),
            "ORCHESTRATOR_TICKETS_DIR": str(Path(tmp) / "tickets"),
            "ORCHESTRATOR_CLAUDE_JSON": str(Path(tmp) / "none.json"),
            "ORCHESTRATOR_TMUX_URL": "http://127.0.0.1:9",
            "ORCHESTRATOR_LOG_LEVEL": "WARNING",
        }
        quiet = subprocess.DEVNULL
        daemon = subprocess.Popen(
            [sys.executable, "-m", "orchestrator"], env=env, stdout=quiet, stderr=quiet
        )
        peer = subprocess.Popen(
            [sys.executable, str(HERE / "baseline_app.py"), str(data), str(peer_port)],
            stdout=quiet,
            stderr=quiet,
        )
        try:
            wait_ready(f"http://127.0.0.1:{daemon_port}", daemon)
            wait_ready(f"http://127.0.0.1:{peer_port}", peer)
            print(f"{PENDING} pending tickets, {CLIENTS} concurrent clients, {requests} requests")
            servers = {
                "orchestrator": f"http://127.0.0.1:{daemon_port}",
                "read-per-call": f"http://127.0.0.1:{peer_port}",
            }
            print("load generator: httpx (Python, same machine)")
            rates = [
                report(name, *asyncio.run(load(url, requests))) for name, url in servers.items()
            ]
            print(f"throughput ratio orchestrator / read-per-call: {rates[0] / rates[1]:.1f}x")
            if shutil.which("ab"):
                print("load generator: ApacheBench (ab)")
                rates = []
                for name, url in servers.items():
                    p50, p99, rps = load_with_ab(url + "/api/pending-tickets", requests)
                    print(f"{name:<14} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  {rps:7.0f} req/s")
                    rates.append(rps)
                print(f"throughput ratio orchestrator / read-per-call: {rates[0] / rates[1]:.1f}x")
        finally:
            for process in (daemon, peer):
                process.terminate()
                process.wait(timeout=20)


if __name__ == "__main__":
    main()
