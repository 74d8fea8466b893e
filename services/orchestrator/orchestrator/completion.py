"""Completion files: ``completion-<ticket_id>.txt`` written by the agent's ``/complete`` command,
and failure reports: ``failure-<ticket_id>.json`` written by Claude Code's ``StopFailure`` hook
(installed by aiwf) when the agent's turn ends on an API error such as a refused key.

Only a regular file (never a symlink) with a valid id in its name, at most 64 KiB of UTF-8, is
accepted. Whatever is refused is moved aside, never deleted, so nothing an agent wrote is lost.

>>> completion_ticket_id("completion-WEB-12.txt")
'WEB-12'
>>> completion_ticket_id("completion-../../x.txt") is None
True
"""

from __future__ import annotations

import errno
import json
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
FAILURE_PATTERN = re.compile(r"^failure-([A-Za-z0-9][A-Za-z0-9_-]{0,127})\.json$")
REASON_LIMIT = 300
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


def failure_ticket_id(name: str) -> str | None:
    """The ticket of a failure report's file name.

    >>> failure_ticket_id("failure-WEB-12.json")
    'WEB-12'
    """
    match = FAILURE_PATTERN.match(name)
    return match.group(1) if match else None


def is_candidate(name: str) -> bool:
    """Names the daemon looks at at all; other files in a shared /tmp are none of its business."""
    completion = name.startswith(COMPLETION_PREFIX) and name.endswith(".txt")
    return completion or FAILURE_PATTERN.match(name) is not None


def failure_reason(text: str) -> str:
    """One line from a ``StopFailure`` hook's JSON: the error kind and the agent's last words.

    >>> failure_reason('{"error": "authentication_failed", '
    ...                '"last_assistant_message": "Invalid API key"}')
    'the agent stopped on an API error (authentication_failed): Invalid API key'
    """
    try:
        report = json.loads(text)
    except ValueError:
        raise CompletionRejected("bad_failure", "the failure report is not JSON") from None
    if not isinstance(report, dict):
        raise CompletionRejected("bad_failure", "the failure report is not a JSON object")
    kind = str(report.get("error") or "unknown")[:80]
    message = " ".join(str(report.get("last_assistant_message") or "").split())
    reason = f"the agent stopped on an API error ({kind})"
    return f"{reason}: {message[:REASON_LIMIT]}" if message else reason


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
