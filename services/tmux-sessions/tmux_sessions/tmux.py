"""The tmux server on one socket, driven through the tmux command line.

Every call is ``tmux -S SOCKET ...`` run as an asyncio subprocess; sessions are addressed by
tmux's own session id (``$3``), which never matches a name by accident.

Example::

    tmux = Tmux(Path("/tmp/tmux-1000/default"))
    await tmux.new_session(name="work", command=None, cwd=Path.home(), env={}, cols=80,
                           rows=24, aiwf_id="3f2a...")
    [session.name for session in await tmux.list_sessions()]  # -> ["work"]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tmux_sessions.shutdown import Shutdown

ID_OPTION = "@aiwf_id"
FIELD_SEPARATOR = "\t"
LIST_FORMAT = FIELD_SEPARATOR.join(
    (
        "#{session_id}",
        "#{session_name}",
        "#{session_created}",
        "#{session_attached}",
        "#{" + ID_OPTION + "}",
    )
)
# tmux refuses a command line over 16 KiB, so long input goes in parts.
SEND_CHUNK_BYTES = 8 * 1024
NO_SERVER_MARKERS = ("no server running", "error connecting to", "no sessions")
# What a tmux client says when its server exits or dies while it waits for an answer.
SERVER_GONE_MARKERS = ("server exited", "lost server")


class TmuxError(RuntimeError):
    """tmux refused a command; the message is tmux's own."""


class TmuxUnavailableError(TmuxError):
    """tmux could not answer for now: its client was ended by a signal, its server went away
    mid-command, or the service is shutting down. Asking again shortly is the remedy."""


class DuplicateSessionError(TmuxError):
    """A session with that name exists already."""


class SessionNotFoundError(TmuxError):
    """The session is gone from tmux."""


@dataclass(frozen=True)
class TmuxSession:
    tmux_id: str
    name: str
    created_at: datetime
    clients: int
    aiwf_id: str | None


def subprocess_environment() -> dict[str, str]:
    """Our environment without TMUX/TMUX_PANE, which would make tmux refuse to nest."""
    env = {key: value for key, value in os.environ.items() if key not in ("TMUX", "TMUX_PANE")}
    env.setdefault("TERM", "xterm-256color")
    return env


def split_utf8(text: str, limit: int) -> list[str]:
    """Split text into parts of at most ``limit`` UTF-8 bytes without cutting a character."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode())
        if size + width > limit and current:
            parts.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    if current:
        parts.append("".join(current))
    return parts


class Tmux:
    """One tmux server, named by its socket path."""

    def __init__(
        self,
        socket: Path,
        binary: str = "tmux",
        timeout: float = 10.0,
        shutdown: Shutdown | None = None,
    ) -> None:
        self.socket = socket
        self.binary = binary
        self.timeout = timeout
        self.shutdown = shutdown or Shutdown()

    def prepare_socket_directory(self) -> None:
        """Create the socket's directory (0700) as tmux does for its default socket; with
        ``-S`` tmux expects it to exist. A directory we may not create is left to /health."""
        with contextlib.suppress(OSError):
            self.socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def command(self, *args: str) -> list[str]:
        """The argv of a tmux command on our socket (``-u``: the client speaks UTF-8)."""
        return [self.binary, "-u", "-S", str(self.socket), *args]

    async def run(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        """Run one tmux command; TmuxError with tmux's message when it fails and ``check``.

        Output goes to temporary files, not pipes: a tmux server started by this command
        daemonises, and an inherited pipe would then never reach end-of-file.
        """
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.command(*args),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=subprocess_environment(),
                )
            except OSError as error:
                reason = error.strerror
                message = f"cannot run {self.binary} ({reason}); check TMUX_SESSIONS_TMUX_BINARY"
                raise TmuxError(message) from None
            try:
                code = await asyncio.wait_for(process.wait(), self.timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                message = f"tmux {args[0]} did not answer within {self.timeout:g} s"
                raise TmuxError(message) from None
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace").strip()
        if check and code != 0:
            raise self.failure(args[0], code, stderr)
        return code, stdout, stderr

    def failure(self, command: str, code: int, stderr: str) -> TmuxError:
        """The error for a tmux command that exited with ``code``: TmuxUnavailableError when
        the failure is passing (signal, server going away, our shutdown), else TmuxError.

        Example: ``failure("list-sessions", -15, "")`` is TmuxUnavailableError
        "tmux list-sessions was ended by SIGTERM".
        """
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else -code
            return TmuxUnavailableError(f"tmux {command} was ended by {name}")
        if any(marker in stderr for marker in SERVER_GONE_MARKERS):
            return TmuxUnavailableError(f"the tmux server went away during {command}: {stderr}")
        if self.shutdown.begun:
            return TmuxUnavailableError(f"tmux {command} was cut short by the service shutdown")
        return TmuxError(stderr or f"tmux {command} exited with {code}")

    async def list_sessions(self) -> list[TmuxSession]:
        """Every session of the server; an empty list when no server runs."""
        code, out, err = await self.run("list-sessions", "-F", LIST_FORMAT, check=False)
        if self.shutdown.begun:
            # A client that got the stop signal too exits 0 with nothing printed.
            raise TmuxUnavailableError("tmux list-sessions was cut short by the service shutdown")
        if code != 0:
            if code > 0 and any(marker in err for marker in NO_SERVER_MARKERS):
                return []
            raise self.failure("list-sessions", code, err)
        sessions = []
        for line in out.splitlines():
            fields = line.split(FIELD_SEPARATOR)
            if len(fields) != 5:
                continue
            tmux_id, name, created, attached, aiwf_id = fields
            sessions.append(
                TmuxSession(
                    tmux_id=tmux_id,
                    name=name,
                    created_at=datetime.fromtimestamp(int(created or 0), UTC),
                    clients=int(attached or 0),
                    aiwf_id=aiwf_id or None,
                )
            )
        return sessions

    async def new_session(
        self,
        *,
        name: str,
        command: str | None,
        cwd: Path,
        env: Mapping[str, str],
        cols: int,
        rows: int,
        aiwf_id: str,
    ) -> None:
        """Start a detached session and label it with our id in the same tmux command."""
        args = ["new-session", "-d", "-s", name, "-x", str(cols), "-y", str(rows), "-c", str(cwd)]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        if command:
            args += ["--", command]
        args += [";", "set-option", ID_OPTION, aiwf_id]
        code, _, err = await self.run(*args, check=False)
        if code != 0:
            if "duplicate session" in err:
                raise DuplicateSessionError(f"a tmux session named {name!r} exists already")
            raise self.failure("new-session", code, err)

    async def set_aiwf_id(self, tmux_id: str, aiwf_id: str) -> None:
        await self._on_session(tmux_id, "set-option", "-t", tmux_id, ID_OPTION, aiwf_id)

    async def kill_session(self, tmux_id: str) -> None:
        await self._on_session(tmux_id, "kill-session", "-t", tmux_id)

    async def send_text(self, tmux_id: str, text: str, *, enter: bool) -> None:
        """Type ``text`` literally into the session's active pane, then Enter when asked."""
        for part in split_utf8(text, SEND_CHUNK_BYTES):
            await self._on_session(tmux_id, "send-keys", "-t", tmux_id, "-l", "--", part)
        if enter:
            await self._on_session(tmux_id, "send-keys", "-t", tmux_id, "Enter")

    async def _on_session(self, tmux_id: str, *args: str) -> None:
        code, _, err = await self.run(*args, check=False)
        if code != 0:
            failure = self.failure(args[0], code, err)
            if isinstance(failure, TmuxUnavailableError):
                raise failure
            if "can't find" in err or any(marker in err for marker in NO_SERVER_MARKERS):
                raise SessionNotFoundError(f"tmux session {tmux_id} is gone")
            raise failure

    async def problem(self) -> str | None:
        """Why tmux is not usable on this socket, or None (a server with no sessions is fine)."""
        directory = self.socket.parent
        if not directory.is_dir():
            return f"tmux socket directory {directory} does not exist"
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"tmux socket directory {directory} is not writable"
        try:
            await self.list_sessions()
        except (TmuxError, OSError) as error:
            return f"tmux does not answer: {error}"
        return None

    def attach_command(self, tmux_id: str, *, read_only: bool) -> list[str]:
        """argv of a client attaching to the session; viewers neither type nor resize."""
        args = ["attach-session", "-t", tmux_id]
        if read_only:
            args += ["-f", "read-only,ignore-size"]
        return self.command(*args)
