"""Terminal benchmark: tmux-sessions against terminado, side by side, on one machine, one run.

Both servers attach each WebSocket client to the same tmux session through its own pty
(``tmux attach``), so the comparison is of the servers, not of tmux. Measured:

* throughput: ``head -c NM /dev/zero | base64`` in the session; wall time from sending the
  command until the end marker reaches the client (tmux coalesces output, so bytes received
  are fewer than bytes produced; MB/s = base64 bytes produced / wall time);
* keystroke echo: single keystrokes, time from send until the echo arrives; p50 and p99;
* memory: RSS of the server process (and with its helper processes) with N clients attached.

A reference row runs terminado serving bash directly (no tmux), the figure DESIGN.md quotes.

Usage: .venv/bin/python bench/terminal/run.py [--megabytes 200] [--keystrokes 1000]
       [--clients 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

HERE = Path(__file__).resolve().parent
TOKEN = "bench-service-token-0123456789abcdef"
COLS, ROWS = 80, 24
SHELL = "env PS1='$ ' bash --norc --noprofile"
ECHO_BLOCKS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base64_size(megabytes: int) -> int:
    """Bytes ``head -c NM /dev/zero | base64`` writes: 4 per 3 input bytes, LF every 76."""
    encoded = -(-megabytes * 1024 * 1024 // 3) * 4
    return encoded + -(-encoded // 76)


def tree_rss_kib(pid: int) -> tuple[int, int]:
    """RSS of a process alone and with all its descendants, in KiB (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))

    def rss(process: int) -> int:
        try:
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss(current)
        stack.extend(children.get(current, []))
    return rss(pid), total


class Terminal:
    """A WebSocket terminal client; subclasses speak each server's protocol."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.received = 0

    async def send(self, text: str) -> None:
        raise NotImplementedError

    def decode(self, message: str | bytes) -> bytes:
        raise NotImplementedError

    async def output(self) -> bytes:
        while True:
            data = self.decode(await self.connection.recv())
            if data:
                self.received += len(data)
                return data

    async def wait_for(self, marker: bytes, timeout: float = 600) -> None:
        tail = b""
        async with asyncio.timeout(timeout):
            while True:
                tail = (tail + await self.output())[-(len(marker) + 4096) :]
                if marker in tail:
                    return

    async def sync(self, tag: int) -> None:
        """Clear the screen and wait until the shell answered: the terminal is quiet."""
        await self.send(f"clear; echo SYNC_$(({tag}+1))_DONE\r")
        await self.wait_for(f"SYNC_{tag + 1}_DONE".encode())
        await asyncio.sleep(0.3)
        while True:
            try:
                async with asyncio.timeout(0.2):
                    await self.output()
            except TimeoutError:
                return


class OursTerminal(Terminal):
    async def send(self, text: str) -> None:
        await self.connection.send(json.dumps({"type": "input", "data": text}))

    def decode(self, message: str | bytes) -> bytes:
        return message if isinstance(message, bytes) else b""


class TerminadoTerminal(Terminal):
    async def send(self, text: str) -> None:
        await self.connection.send(json.dumps(["stdin", text]))

    def decode(self, message: str | bytes) -> bytes:
        kind, *rest = json.loads(message)
        return str(rest[0]).encode() if kind == "stdout" else b""


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    connect: Callable[[], Awaitable[Terminal]]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not listen")


def start_ours(root: Path, tmux_socket: Path, session_id: str, log: Any) -> Server:
    port = free_port()
    (root / "key").write_text("bench-cookie-key-0123456789abcdef")
    (root / "token").write_text(TOKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    env.update(
        TMUX_SESSIONS_HOST="127.0.0.1",
        TMUX_SESSIONS_PORT=str(port),
        TMUX_SESSIONS_DATA_DIR=str(root / "data"),
        TMUX_SESSIONS_TMUX_SOCKET=str(tmux_socket),
        TMUX_SESSIONS_SECRET_KEY_FILE=str(root / "key"),
        TMUX_SESSIONS_SERVICE_TOKEN_FILE=str(root / "token"),
        TMUX_SESSIONS_LOG_LEVEL="warning",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tmux_sessions"], env=env, stdout=log, stderr=log
    )
    wait_listening(port, process)
    url = f"ws://127.0.0.1:{port}/ws/sessions/{session_id}?cols={COLS}&rows={ROWS}"

    async def connect() -> Terminal:
        connection = await websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {TOKEN}"}, max_size=None
        )
        return OursTerminal(connection)

    return Server("tmux-sessions", process, connect)


def start_terminado(command: list[str], log: Any, *, shared: bool = False) -> Server:
    port = free_port()
    args = [sys.executable, str(HERE / "terminado_server.py"), str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    env["TERM"] = "xterm-256color"
    process = subprocess.Popen(
        [*args, *(["--shared"] if shared else []), "--", *command],
        env=env,
        stdout=log,
        stderr=log,
    )
    wait_listening(port, process)

    async def connect() -> Terminal:
        connection = await websockets.connect(f"ws://127.0.0.1:{port}/websocket", max_size=None)
        terminal = TerminadoTerminal(connection)
        await connection.send(json.dumps(["set_size", ROWS, COLS]))
        return terminal

    return Server("terminado", process, connect)


async def throughput(server: Server, megabytes: int, tag: int) -> tuple[float, int]:
    """Seconds until the end marker of the burst arrives, and bytes received."""
    terminal = await server.connect()
    try:
        await terminal.sync(tag)
        terminal.received = 0
        started = time.perf_counter()
        await terminal.send(
            f"head -c {megabytes}M /dev/zero | base64; echo END_$(({tag}+2))_MARK\r"
        )
        await terminal.wait_for(f"END_{tag + 2}_MARK".encode())
        return time.perf_counter() - started, terminal.received
    finally:
        await terminal.connection.close()


async def echo_latency(server: Server, keystrokes: int, tag: int) -> list[float]:
    """Milliseconds from sending one keystroke until its echo arrives."""
    terminal = await server.connect()
    samples = []
    try:
        await terminal.sync(tag)
        letters = "abcdefghijklmnopqrstuvwxyz"
        for index in range(keystrokes):
            if index and index % 40 == 0:
                await terminal.send("\x15")  # Ctrl-U: keep the line short
                await terminal.sync(tag + index)
            char = letters[index % len(letters)]
            started = time.perf_counter()
            await terminal.send(char)
            while char.encode() not in await terminal.output():
                pass
            samples.append((time.perf_counter() - started) * 1000)
        await terminal.send("\x15")
    finally:
        await terminal.connection.close()
    return samples


async def memory(server: Server, clients: int) -> tuple[int, int]:
    terminals = [await server.connect() for _ in range(clients)]
    try:
        for terminal in terminals:
            await terminal.output()
        await asyncio.sleep(2)
        return tree_rss_kib(server.process.pid)
    finally:
        for terminal in terminals:
            await terminal.connection.close()
        await asyncio.sleep(1)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="tbench-"))
    tmux_socket = root / "tmux.sock"
    tmux = ["tmux", "-S", str(tmux_socket)]
    tmux_env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    subprocess.run(
        [
            *tmux,
            "new-session",
            "-d",
            "-s",
            "bench",
            "-x",
            str(COLS),
            "-y",
            str(ROWS),
            SHELL,
            ";",
            "set-option",
            "status",
            "off",
            ";",
            "set-option",
            "@aiwf_id",
            "benchsession",
        ],
        check=True,
        env=tmux_env,
    )
    log = (root / "servers.log").open("ab")
    ours = start_ours(root, tmux_socket, "benchsession", log)
    peer = start_terminado([*tmux, "attach-session", "-t", "bench"], log)
    bash_direct = start_terminado(["bash", "--norc", "--noprofile"], log, shared=True)
    results: dict[str, Any] = {
        "megabytes": args.megabytes,
        "base64_bytes": base64_size(args.megabytes),
    }
    try:
        # Rounds alternate between the servers, so load from elsewhere falls on both alike.
        tag = 100
        times: dict[str, list[float]] = {ours.name: [], peer.name: []}
        received: dict[str, list[int]] = {ours.name: [], peer.name: []}
        for _ in range(args.rounds):
            for server in (ours, peer):
                tag += 10
                seconds, got = await throughput(server, args.megabytes, tag)
                times[server.name].append(seconds)
                received[server.name].append(got)
        for server in (ours, peer):
            median = statistics.median(times[server.name])
            results.setdefault("throughput", {})[server.name] = {
                "seconds_median": round(median, 3),
                "seconds_all": [round(t, 3) for t in times[server.name]],
                "mb_per_s": round(results["base64_bytes"] / median / 1e6, 1),
                "bytes_received_median": int(statistics.median(received[server.name])),
            }
        direct_seconds, direct_received = await throughput(bash_direct, args.megabytes, 999)
        results["throughput"]["terminado, bash without tmux (reference)"] = {
            "seconds_median": round(direct_seconds, 3),
            "mb_per_s": round(results["base64_bytes"] / direct_seconds / 1e6, 1),
            "bytes_received_median": direct_received,
        }
        samples: dict[str, list[float]] = {ours.name: [], peer.name: []}
        block = max(args.keystrokes // ECHO_BLOCKS, 1)
        for _ in range(ECHO_BLOCKS):
            for server in (ours, peer):
                tag += 10_000
                samples[server.name] += await echo_latency(server, block, tag)
        for server in (ours, peer):
            results.setdefault("echo_ms", {})[server.name] = {
                "p50": round(percentile(samples[server.name], 0.50), 3),
                "p99": round(percentile(samples[server.name], 0.99), 3),
                "n": len(samples[server.name]),
            }
        for server in (ours, peer):
            alone, with_helpers = await memory(server, args.clients)
            results.setdefault("rss_kib", {})[server.name] = {
                "server_process": alone,
                "with_tmux_clients": with_helpers,
                "clients": args.clients,
            }
    finally:
        for server in (ours, peer, bash_direct):
            server.stop()
        subprocess.run([*tmux, "kill-server"], env=tmux_env, capture_output=True)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
    thr = results["throughput"]
    echo = results["echo_ms"]
    results["ratios"] = {
        "throughput ours/terminado (higher is better)": round(
            thr["tmux-sessions"]["mb_per_s"] / thr["terminado"]["mb_per_s"], 2
        ),
        "echo p50 ours/terminado (lower is better)": round(
            echo["tmux-sessions"]["p50"] / echo["terminado"]["p50"], 2
        ),
        "echo p99 ours/terminado (lower is better)": round(
            echo["tmux-sessions"]["p99"] / echo["terminado"]["p99"], 2
        ),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=200, help="burst size (default 200)")
    parser.add_argument("--keystrokes", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="throughput runs per server")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
