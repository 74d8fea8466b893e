"""The backup directory: archive names, their verification records, and retention.

An archive is ``<project>_<volume>_<YYYYmmddTHHMMSS.fffZ>.tar.zst`` (or ``.tar.gz``). While it is
being written it is ``.<final name>.<pid>.partial``, so no incomplete archive ever carries a final
name. Beside a verified archive lies ``<archive>.verified``: JSON recording the size and mtime it
had when it verified, so ``aiwf backups`` can tell verified, unverified and changed archives apart
without reading them again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiwf.config import Retention
from aiwf.files import write_atomic

ARCHIVE_NAME = re.compile(
    r"^(?P<project>[a-z0-9][a-z0-9_-]*)_(?P<volume>[a-z0-9-]+)_"
    r"(?P<stamp>\d{8}T\d{6}\.\d{3}Z)\.tar\.(?P<ext>zst|gz)$"
)
PARTIAL = re.compile(r"^\.(?P<final>.+)\.(?P<pid>\d+)\.partial$")
STAMP_FORMAT = "%Y%m%dT%H%M%S"
EXTENSIONS = {"zstd": "zst", "gzip": "gz"}

VerificationState = Literal["verified", "unverified", "changed"]


def stamp(moment: dt.datetime) -> str:
    """``20261125T031500.123Z``: sortable, unique per millisecond, safe in a file name."""
    return f"{moment.strftime(STAMP_FORMAT)}.{moment.microsecond // 1000:03d}Z"


def parse_stamp(text: str) -> dt.datetime:
    moment = dt.datetime.strptime(text[:15], STAMP_FORMAT).replace(tzinfo=dt.UTC)
    return moment + dt.timedelta(milliseconds=int(text[16:19]))


def archive_name(project: str, volume: str, moment: dt.datetime, compression: str) -> str:
    return f"{project}_{volume}_{stamp(moment)}.tar.{EXTENSIONS[compression]}"


def partial_name(final: str) -> str:
    return f".{final}.{os.getpid()}.partial"


@dataclass(frozen=True)
class ArchiveInfo:
    """One archive in the backup directory, as ``aiwf backups`` lists it."""

    path: Path
    project: str
    volume: str
    created: dt.datetime
    size: int
    state: VerificationState

    @property
    def age(self) -> dt.timedelta:
        return dt.datetime.now(dt.UTC) - self.created


def record_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".verified")


def record_verified(archive: Path, summary: dict[str, Any]) -> None:
    """Note that ``archive``, as it is now (size, mtime), passed verification."""
    info = archive.stat()
    record = {
        **summary,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "verified_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    write_atomic(record_path(archive), json.dumps(record, indent=2).encode())


def verification_state(archive: Path) -> VerificationState:
    try:
        record = json.loads(record_path(archive).read_text())
    except (OSError, ValueError):
        return "unverified"
    info = archive.stat()
    if record.get("size") != info.st_size or record.get("mtime_ns") != info.st_mtime_ns:
        return "changed"
    return "verified"


def list_archives(
    backup_dir: Path, project: str | None = None, volume: str | None = None
) -> list[ArchiveInfo]:
    """Archives under ``backup_dir``, newest first, filtered by project and volume."""
    if not backup_dir.is_dir():
        return []
    found = []
    for path in backup_dir.iterdir():
        match = ARCHIVE_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        if project is not None and match["project"] != project:
            continue
        if volume is not None and match["volume"] != volume:
            continue
        found.append(
            ArchiveInfo(
                path=path,
                project=match["project"],
                volume=match["volume"],
                created=parse_stamp(match["stamp"]),
                size=path.stat().st_size,
                state=verification_state(path),
            )
        )
    return sorted(found, key=lambda item: item.created, reverse=True)


def stale_partials(backup_dir: Path) -> list[Path]:
    """Partial archives whose writer process is gone (killed mid-backup)."""
    if not backup_dir.is_dir():
        return []
    stale = []
    for path in backup_dir.iterdir():
        match = PARTIAL.match(path.name)
        if match and not alive(int(match["pid"])):
            stale.append(path)
    return stale


def alive(pid: int) -> bool:
    """Whether a process with this id runs (on this host)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def to_keep(archives: list[ArchiveInfo], retention: Retention) -> set[Path]:
    """The archives retention keeps: the last N, the newest of each of the last days and weeks.

    ``archives`` are one volume's, any order. Example: with keep_last=2, keep_daily=3 and backups
    every 6 hours, the 2 newest are kept plus the newest of each of the 3 most recent days.
    """
    newest_first = sorted(archives, key=lambda item: item.created, reverse=True)
    keep = {item.path for item in newest_first[: retention.keep_last]}
    for period, count in (
        (lambda moment: moment.date().isoformat(), retention.keep_daily),
        (lambda moment: "{}-W{:02d}".format(*moment.isocalendar()[:2]), retention.keep_weekly),
    ):
        seen: set[str] = set()
        for item in newest_first:
            key = period(item.created)
            if key in seen:
                continue
            if len(seen) >= count:
                break
            seen.add(key)
            keep.add(item.path)
    return keep
