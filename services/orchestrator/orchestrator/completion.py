"""Completion files: ``completion-<ticket_id>.txt`` written by the agent's ``/complete`` command.

Only a regular file (never a symlink) with a valid id in its name, at most 64 KiB of UTF-8, is
accepted. Whatever is refused is moved aside, never deleted, so nothing an agent wrote is lost.

>>> completion_ticket_id("completion-WEB-12.txt")
'WEB-12'
>>> completion_ticket_id("completion-../../x.txt") is None
True
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import time
from pathlib import Path

from orchestrator.models import utcnow

MAX_SUMMARY_BYTES = 64 * 1024
COMPLETION_PREFIX = "completion-"
NAME_PATTERN = re.compile(r"^completion-([A-Za-z0-9][A-Za-z0-9_-]{0,127})\.txt$")
SETTLE_SECONDS = 0.5


class CompletionRejected(Exception):
    """The file cannot be accepted; ``reason`` is a short metric label, the message a sentence."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CompletionNotReady(Exception):
    """The file is still being written; look again shortly."""


def completion_ticket_id(name: str) -> str | None:
    match = NAME_PATTERN.match(name)
    return match.group(1) if match else None


def is_candidate(name: str) -> bool:
    """Names the daemon looks at at all; other files in a shared /tmp are none of its business."""
    return name.startswith(COMPLETION_PREFIX) and name.endswith(".txt")


def read_summary(path: Path, settle_seconds: float = SETTLE_SECONDS) -> str:
    """Read and validate one completion file without following symlinks.

    A file modified less than ``settle_seconds`` ago may still be growing: ``CompletionNotReady``.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CompletionRejected(
                "symlink", f"{path.name} is a symlink, not a regular file"
            ) from None
        raise
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise CompletionRejected("not_regular", f"{path.name} is not a regular file")
        if info.st_size > MAX_SUMMARY_BYTES:
            raise CompletionRejected(
                "too_large",
                f"{path.name} has {info.st_size} bytes; a summary may have at most "
                f"{MAX_SUMMARY_BYTES}",
            )
        if time.time() - info.st_mtime < settle_seconds:
            raise CompletionNotReady(path.name)
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            raw = handle.read(MAX_SUMMARY_BYTES + 1)
    finally:
        os.close(descriptor)
    if len(raw) > MAX_SUMMARY_BYTES:
        raise CompletionRejected("too_large", f"{path.name} grew past {MAX_SUMMARY_BYTES} bytes")
    try:
        summary = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise CompletionRejected(
            "encoding", f"{path.name} is not valid UTF-8 (byte {exc.start}); write it as UTF-8"
        ) from None
    if not summary:
        raise CompletionRejected("empty", f"{path.name} is empty; /complete needs a summary")
    return summary


def move_aside(path: Path, folder: Path) -> Path:
    """Move a completion file into ``folder`` under a unique name (symlinks move as links)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{utcnow():%Y%m%dT%H%M%S%f}-{path.name}"
    shutil.move(str(path), str(target))
    return target
