"""One deploy at a time per host: a lock file in the install dir, taken before any operation runs.

The lock is taken while pyinfra prepares the deploy (before anything changes) and released when
the host's last operation ends, or its first failing one. It is not an operation itself, so it
never shows as a change. A lock whose deploy died is taken over: at once when it was taken on
this machine by a process that is gone, else after ``aiwf_deploy.lock_stale_minutes``::

    holder = acquire_lock(state, host, layout.lock, settings.lock_stale_minutes)
    hold(state, host, layout.lock, holder)
    ...                                   # add the deploy's operations
    release_after(state, host, last_operation)
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from pyinfra import logger
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.api.host import Host
from pyinfra.api.operation import OperationMeta
from pyinfra.api.state import BaseStateCallback, State

from aiwf.backup.store import alive
from aiwf.deploy.facts import TextFile
from aiwf.errors import LockedError


@dataclass(frozen=True)
class Holder:
    """Who holds a host's deploy lock."""

    token: str
    machine: str
    pid: int
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.machine} since {self.since}"

    def text(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(str(data["token"]), str(data["machine"]), int(data["pid"]), data["since"])
        except (ValueError, KeyError, TypeError):
            return None

    @classmethod
    def mine(cls) -> Holder:
        return cls(
            token=uuid.uuid4().hex,
            machine=socket.gethostname(),
            pid=os.getpid(),
            since=datetime.now(UTC).isoformat(timespec="seconds"),
        )


def is_stale(holder: Holder, stale_minutes: int, now: datetime | None = None) -> bool:
    """A holder from this machine whose process is gone, or one older than ``stale_minutes``."""
    if holder.machine == socket.gethostname() and not alive(holder.pid):
        return True
    try:
        since = datetime.fromisoformat(holder.since)
    except ValueError:
        return True
    age = (now or datetime.now(UTC)) - since
    return age.total_seconds() > stale_minutes * 60


def _run(state: State, host: Host, command: str) -> tuple[bool, str]:
    """Run ``command`` with the host's own privileges (``_sudo`` and friends from its data)."""
    arguments, _ = pop_global_arguments(state, host, {})
    connector = {key: arguments[key] for key in CONNECTOR_ARGUMENT_KEYS if key in arguments}  # type: ignore[literal-required]
    ok, output = host.run_shell_command(command, **connector)
    return ok, "\n".join(output.stderr_lines)


def acquire_lock(
    state: State, host: Host, path: PurePosixPath, stale_minutes: int, check_only: bool = False
) -> Holder | None:
    """Take the host's deploy lock; :class:`LockedError` naming the holder when it is taken.

    With ``check_only`` (a dry run) the lock is only checked, never taken.
    """
    current = host.get_fact(TextFile, path=str(path))
    if current is not None:
        holder = Holder.parse(current)
        if holder is not None and not is_stale(holder, stale_minutes):
            raise LockedError(
                f"{host.name}: another deploy holds the lock ({holder.describe()}); "
                f"wait for it, or remove {path} if that deploy is gone"
            )
        if not check_only:
            logger.warning(
                f"{host.print_prefix}taking over a stale deploy lock "
                f"({holder.describe() if holder else 'unreadable'})"
            )
    if check_only:
        return None
    mine = Holder.mine()
    target, quoted = shlex.quote(str(path)), shlex.quote(mine.text())
    replace = "rm -f " + target + " && " if current is not None else ""
    ok, error = _run(
        state,
        host,
        f"mkdir -p {shlex.quote(str(path.parent))} && {replace}"
        f"( set -o noclobber; printf '%s\\n' {quoted} > {target} )",
    )
    if not ok:
        raise LockedError(f"{host.name}: cannot take the deploy lock {path}: {error.strip()}")
    return mine


class _Release(BaseStateCallback):
    """Releases each host's lock after its last operation, or its first failing one."""

    def __init__(self) -> None:
        self.held: dict[Host, tuple[PurePosixPath, Holder, str]] = {}

    def release(self, state: State, host: Host) -> None:
        entry = self.held.pop(host, None)
        if entry is None:
            return
        path, holder, _last = entry
        target = shlex.quote(str(path))
        _run(state, host, f"grep -qs {shlex.quote(holder.token)} {target} && rm -f {target}")

    def operation_host_success(  # type: ignore[override]
        self, state: State, host: Host, op_hash: Any, retry_count: int = 0
    ) -> None:
        entry = self.held.get(host)
        if entry is not None and entry[2] == op_hash:
            self.release(state, host)

    def operation_host_error(  # type: ignore[override]
        self, state: State, host: Host, op_hash: Any, retry_count: int = 0, max_retries: int = 0
    ) -> None:
        if retry_count >= max_retries:
            self.release(state, host)


_HANDLERS: weakref.WeakKeyDictionary[State, _Release] = weakref.WeakKeyDictionary()


def hold(state: State, host: Host, path: PurePosixPath, holder: Holder) -> None:
    """Remember that this deploy holds ``host``'s lock, so that it is released later."""
    handler = _HANDLERS.get(state)
    if handler is None:
        handler = _HANDLERS[state] = _Release()
        state.add_callback_handler(handler)  # type: ignore[no-untyped-call]
    handler.held[host] = (path, holder, "")


def release_after(state: State, host: Host, last: OperationMeta) -> None:
    """Release ``host``'s lock once operation ``last`` has run on it (or any has failed)."""
    handler = _HANDLERS.get(state)
    if handler is not None and host in handler.held:
        path, holder, _ = handler.held[host]
        handler.held[host] = (path, holder, last._hash)


def release_now(state: State, host: Host) -> None:
    """Release ``host``'s lock at once (its deploy stopped before adding operations)."""
    handler = _HANDLERS.get(state)
    if handler is not None:
        handler.release(state, host)
