"""The audit log: one JSON line per change applied, in ``<data_dir>/history.jsonl``.

Each entry is appended with a single ``write`` on an ``O_APPEND`` descriptor and fsynced, so
concurrent writers never interleave and a crash loses at most the entry being written. Entries
name what changed, never a secret value::

    record(data_dir, "recreate", "orchestrator", reason="spec changed", outcome="ok")
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HISTORY_FILE = "history.jsonl"


def history_path(data_dir: Path) -> Path:
    return data_dir / HISTORY_FILE


def record(data_dir: Path, action: str, target: str, **details: Any) -> dict[str, Any]:
    """Append one entry and return it."""
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "action": action,
        "target": target,
        **details,
    }
    line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(history_path(data_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return entry


def read_history(data_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The entries, oldest first (the last ``limit`` when given); unreadable lines are skipped."""
    try:
        lines = history_path(data_dir).read_text().splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            entries.append(value)
    return entries[-limit:] if limit else entries
