"""``aiwf exec``: run a command in a service's container, with the terminal or stdin attached.

With a terminal on both ends the command gets a TTY (so ``getpass`` prompts work: the password
reset the first ``up`` prints); otherwise stdin is streamed in and stdout/stderr come back
separately. The exit status is the command's::

    status = run_in_container(client, "ai-workflow-tmux-sessions",
                              ["python", "-m", "tmux_sessions.admin", "list-users"])
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, BinaryIO

from aiwf.engine.docker_client import engine_errors

if TYPE_CHECKING:
    import docker


def exec_output(client: docker.DockerClient, container: str, command: list[str]) -> tuple[int, str]:
    """Run ``command`` in ``container`` without a terminal; (exit status, its output stripped).

    Example: ``exec_output(client, "ai-workflow-sandbox", ["id", "-u"])`` -> ``(0, "1000")``.
    """
    with engine_errors(f"run {' '.join(command)} in {container}"):
        exec_id = client.api.exec_create(container, command)["Id"]
        output = client.api.exec_start(exec_id)
        code = client.api.exec_inspect(exec_id)["ExitCode"]
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
    return int(code or 0), text.strip()


def _raw_socket(stream: Any) -> socket.socket:
    raw = getattr(stream, "_sock", stream)
    if not isinstance(raw, socket.socket):
        raise TypeError(f"unexpected exec stream {type(stream).__name__}")
    return raw


def _exit_status(client: docker.DockerClient, exec_id: str) -> int:
    for _ in range(50):
        state = client.api.exec_inspect(exec_id)
        if not state.get("Running"):
            return int(state.get("ExitCode") or 0)
        time.sleep(0.1)
    return int(client.api.exec_inspect(exec_id).get("ExitCode") or 0)


def _pump_tty(conn: socket.socket, stdin_fd: int, stdout: BinaryIO) -> None:
    import termios
    import tty

    saved = termios.tcgetattr(stdin_fd)
    tty.setraw(stdin_fd)
    try:
        while True:
            ready, _w, _x = select.select([conn.fileno(), stdin_fd], [], [])
            if conn.fileno() in ready:
                data = conn.recv(65536)
                if not data:
                    return
                stdout.write(data)
                stdout.flush()
            if stdin_fd in ready:
                typed = os.read(stdin_fd, 4096)
                if not typed:
                    conn.shutdown(socket.SHUT_WR)
                else:
                    conn.sendall(typed)
    finally:
        termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)


def _pump_streams(conn: socket.socket, stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO) -> None:
    from docker.utils.socket import frames_iter

    def feed() -> None:
        with contextlib.suppress(OSError):
            for chunk in iter(lambda: stdin.read(65536), b""):
                conn.sendall(chunk)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)

    threading.Thread(target=feed, daemon=True).start()
    for stream, data in frames_iter(conn, tty=False):
        target = stderr if stream == 2 else stdout
        target.write(data)
        target.flush()


def run_in_container(
    client: docker.DockerClient,
    container: str,
    command: list[str],
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
) -> int:
    """Run ``command`` in ``container``; the command's exit status."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    stderr = stderr or sys.stderr.buffer
    use_tty = _isatty(stdin) and _isatty(stdout)
    with engine_errors(f"run {command[0]} in {container}"):
        exec_id = client.api.exec_create(container, command, stdin=True, tty=use_tty)["Id"]
        conn = _raw_socket(client.api.exec_start(exec_id, socket=True, tty=use_tty))
        try:
            if use_tty:
                size = os.get_terminal_size(stdout.fileno())
                client.api.exec_resize(exec_id, height=size.lines, width=size.columns)
                _pump_tty(conn, stdin.fileno(), stdout)
            else:
                _pump_streams(conn, stdin, stdout, stderr)
        finally:
            conn.close()
        return _exit_status(client, exec_id)


def _isatty(stream: BinaryIO) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
