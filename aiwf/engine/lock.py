"""The deploy lock: one ``aiwf up`` (or build, down, rebuild) at a time per data dir.

An ``fcntl`` lock on ``<data_dir>/deploy.lock``; the holder writes who it is (pid, host, command,
since) into the file so a second caller can say who holds it. The kernel releases the lock when
the holder exits, however it exits, so a crash never leaves a stale lock behind::

    with deploy_lock(config.paths.data_dir, timeout_s=60):
        converge(...)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiwf.errors import LockedError

LOCK_FILE = "deploy.lock"


def holder_text(info: dict[str, Any]) -> str:
    """``pid 4242 on host1 since 2026-01-01T10:00:00+00:00: aiwf up``."""
    if not info:
        return "an unknown process"
    return (
        f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}: "
        f"{info.get('command')}"
    )


def read_holder(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@contextmanager
def deploy_lock(data_dir: Path, timeout_s: float = 0, command: str | None = None) -> Iterator[None]:
    """Hold the deploy lock; wait up to ``timeout_s`` for it, then raise :class:`LockedError`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    waited = f" after waiting {timeout_s:g} s" if timeout_s else ""
                    raise LockedError(
                        f"another aiwf holds the deploy lock ({path}){waited}: "
                        f"{holder_text(read_holder(path))}"
                    ) from None
                time.sleep(0.2)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command or " ".join(["aiwf", *sys.argv[1:]]),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
