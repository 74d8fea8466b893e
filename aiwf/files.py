"""Writing files so that nothing ever sees half of one, and the command that names this aiwf.

Every state, secret, certificate and rendered file aiwf writes goes through :func:`write_atomic`.
This module imports only the standard library, so a no-op ``aiwf up`` stays fast.

Example::

    write_atomic(Path("/var/lib/ai-workflow/secrets/service_token"), token, mode=0o600)
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` so readers see the old or the new bytes, never a part.

    The temporary file is created 0600 in the same folder, filled, fsynced, given ``mode`` and
    renamed over ``path``; then the folder is fsynced, so the rename survives a crash. A secret
    is never readable by others, not even while it is being written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def aiwf_command(inventory: Path | None, host: str | None, *words: str) -> str:
    """A shell command running this same ``aiwf`` on the same settings, for timers and hooks.

    >>> aiwf_command(None, None, "backup")  # doctest: +SKIP
    '/srv/ai-workflow/.venv/bin/aiwf backup'
    """
    aiwf = Path(sys.executable).with_name("aiwf")
    argv = [str(aiwf) if aiwf.exists() else "aiwf"]
    if inventory is not None:
        argv += ["--inventory", str(inventory.resolve())]
    if host is not None:
        argv += ["--host", host]
    return shlex.join([*argv, *words])
