"""The tmux server on one socket, driven through the tmux command line.

Every call is ``tmux -S SOCKET ...`` run as an asyncio subprocess; sessions are addressed by
tmux's own session id (``$3``), which never matches a name by accident.

A session started with a command keeps its pane when that command exits (``remain-on-exit``),
so the listing can report how it ended (``TmuxSession.exit_status``) and the caller can read its
last screen (``capture_last_screen``) before ending it (``kill_session``).

Example::

    tmux = Tmux(Path("/tmp/tmux-1000/default"))
    await tmux.new_session(name="work", command="sh -c 'exit 3'", cwd=Path.home(), env={},
                           cols=80, rows=24, aiwf_id="3f2a...", ticket_id="PROJ-7")
    [(s.name, s.ticket_id, s.exit_status) for s in await tmux.list_sessions()]
    # -> [("work", "PROJ-7", 3)] once the command has exited; exit_status is None before
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
# The ticket a session works on, readable by anything that sees tmux alone, e.g.
# ``tmux list-sessions -F '#{session_name} #{@aiwf_ticket}'``.
TICKET_OPTION = "@aiwf_ticket"
# "1" when all the session has is one window with one pane. Only such a session is finished by
# the exit of its pane: a host user's split or second window may still hold live work.
SINGLE_PANE_FORMAT = "#{&&:#{==:#{session_windows},1},#{==:#{window_panes},1}}"
# The pane-died hook of sessions with a command: detach every client of a finished session, so
# browser terminals and host shells end when the command exits, as without remain-on-exit.
# ``-s ''`` is the hook's own session.
DETACH_WHEN_FINISHED = f"if-shell -F '{SINGLE_PANE_FORMAT}' \"detach-client -s ''\""
# The pipe-pane command of sessions with a command. tmux 3.3a frees a pane whose process it has
# reaped without reading what the process wrote last (about one fast failure in twenty loses its
# "command not found"), unless the pane has a pipe: then it first reads everything. The pipe
# reader only discards the copy; the pane keeps its screen.
DRAIN_BEFORE_EXIT_PIPE = "exec cat >/dev/null"
# "1" when the session's only pane is dead: its command has exited (it may not be reaped yet).
PANE_EXITED_FORMAT = "#{&&:#{pane_dead}," + SINGLE_PANE_FORMAT + "}"
FIELD_SEPARATOR = "\t"
# In list-sessions the pane formats describe the session's active pane. tmux marks a pane dead
# when its terminal closes, and knows the exit status or signal only once it has reaped the
# process; until then the session still counts as running. The ticket comes last: a tab in a
# value set from the host's shell stays in it.
LIST_FORMAT = FIELD_SEPARATOR.join(
    (
        "#{session_id}",
        "#{session_name}",
        "#{session_created}",
        "#{session_attached}",
        "#{" + ID_OPTION + "}",
        PANE_EXITED_FORMAT,
        "#{pane_dead_status}",
        "#{pane_dead_signal}",
        "#{" + TICKET_OPTION + "}",
    )
)
LIST_FIELD_COUNT = 9
# How much of a finished session's pane ``capture_last_screen`` keeps.
LAST_SCREEN_HISTORY_LINES = 200
LAST_SCREEN_MAX_CHARS = 4000
# Exit status of a command ended by a signal, as shells report it: 128 + the signal number.
SIGNAL_EXIT_BASE = 128
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
    """One session as ``list-sessions`` reports it.

    ``exit_status`` is set once the session is finished: its only pane's command has exited
    and the pane was kept (remain-on-exit), e.g. 127 for a command that was not found, or
    128 + N for one ended by signal N. None while the session runs.
    """

    tmux_id: str
    name: str
    created_at: datetime
    clients: int
    aiwf_id: str | None
    ticket_id: str | None = None
    exit_status: int | None = None


def subprocess_environment() -> dict[str, str]:
    """Our environment without TMUX/TMUX_PANE, which would make tmux refuse to nest."""
    env = {key: value for key, value in os.environ.items() if key not in ("TMUX", "TMUX_PANE")}
    env.setdefault("TERM", "xterm-256color")
    return env


def tmux_argument(value: str) -> str:
    """``value`` as tmux reads it back unchanged from a command-line argument.

    tmux takes a trailing ``;`` of any argument as the end of a command and drops it (so
    ``send-keys -l 'ls;'`` would type ``ls``); a trailing ``\\;`` stands for a literal ``;``.

    >>> tmux_argument("PROJ-7;"), tmux_argument("PROJ-7")
    ('PROJ-7\\\\;', 'PROJ-7')
    """
    return value[:-1] + "\\;" if value.endswith(";") else value


def command_sequence(*commands: list[str]) -> list[str]:
    """The argv of several tmux commands run as one, in order, with nothing in between; every
    argument goes through ``tmux_argument``.

    >>> command_sequence(["new-session", "-d"], ["set-option", "@aiwf_ticket", "T-1"])
    ['new-session', '-d', ';', 'set-option', '@aiwf_ticket', 'T-1']
    """
    argv: list[str] = []
    for command in commands:
        if argv:
            argv.append(";")
        argv += [tmux_argument(argument) for argument in command]
    return argv


def parse_exit_status(dead: str, status: str, signal_number: str) -> int | None:
    """How a finished session's command ended, from the list-sessions fields; None while the
    session runs or tmux does not know the outcome yet.

    >>> parse_exit_status("1", "127", ""), parse_exit_status("1", "", "9")
    (127, 137)
    >>> parse_exit_status("1", "", "") is None  # exited, but not yet reaped by tmux
    True
    """
    if dead != "1":
        return None
    if status:
        return int(status)
    if signal_number:
        return SIGNAL_EXIT_BASE + int(signal_number)
    return None


def last_screen(captured: str) -> str:
    """The tail of a captured pane as we keep it: trailing spaces and blank lines dropped, at
    most ``LAST_SCREEN_MAX_CHARS`` characters (the end, where the reason for an exit is).

    >>> last_screen("$ claude\\nclaude: command not found   \\n\\n\\n")
    '$ claude\\nclaude: command not found'
    """
    text = "\n".join(line.rstrip() for line in captured.splitlines()).rstrip("\n")
    return text[-LAST_SCREEN_MAX_CHARS:]


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
        start_server: bool = True,
    ) -> None:
        self.socket = socket
        self.binary = binary
        self.timeout = timeout
        self.shutdown = shutdown or Shutdown()
        self.start_server = start_server

    def prepare_socket_directory(self) -> None:
        """Create the socket's directory (0700) as tmux does for its default socket; with
        ``-S`` tmux expects it to exist. A directory we may not create is left to /health."""
        with contextlib.suppress(OSError):
            self.socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def command(self, *args: str) -> list[str]:
        """The argv of a tmux command on our socket (``-u``: the client speaks UTF-8).

        Without ``start_server`` (``-N``) no command ever starts a server: in the stack the
        server is the sandbox's, and a session must never run in this service's container,
        which holds the login secrets.
        """
        no_start = [] if self.start_server else ["-N"]
        return [self.binary, "-u", *no_start, "-S", str(self.socket), *args]

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
        """Every session of the server; an empty list when no server runs.

        When a session's pane has exited but tmux has not reaped its process yet, tmux is made
        to reap it (``reap_exited_panes``) and the sessions are listed once more, so a command
        that failed at once (exit 127) is reported finished now, not at some later listing.
        """
        sessions, unreaped = await self._list_sessions_once()
        if unreaped:
            await self.reap_exited_panes()
            sessions, _ = await self._list_sessions_once()
        return sessions

    async def _list_sessions_once(self) -> tuple[list[TmuxSession], bool]:
        """The sessions, and whether one has an exited pane whose status tmux lacks."""
        code, out, err = await self.run("list-sessions", "-F", LIST_FORMAT, check=False)
        if self.shutdown.begun:
            # A client that got the stop signal too exits 0 with nothing printed.
            raise TmuxUnavailableError("tmux list-sessions was cut short by the service shutdown")
        if code != 0:
            if code > 0 and any(marker in err for marker in NO_SERVER_MARKERS):
                return [], False
            raise self.failure("list-sessions", code, err)
        sessions = []
        unreaped = False
        for line in out.splitlines():
            fields = line.split(FIELD_SEPARATOR, LIST_FIELD_COUNT - 1)
            if len(fields) != LIST_FIELD_COUNT:
                continue
            tmux_id, name, created, attached, aiwf_id, dead, status, signal_number, ticket = fields
            exit_status = parse_exit_status(dead, status, signal_number)
            unreaped = unreaped or (dead == "1" and exit_status is None)
            sessions.append(
                TmuxSession(
                    tmux_id=tmux_id,
                    name=name,
                    created_at=datetime.fromtimestamp(int(created or 0), UTC),
                    clients=int(attached or 0),
                    aiwf_id=aiwf_id or None,
                    ticket_id=ticket or None,
                    exit_status=exit_status,
                )
            )
        return sessions, unreaped

    async def reap_exited_panes(self) -> None:
        """Make the tmux server collect the exit status of pane processes it missed.

        tmux 3.3a built with utempter (Debian's is) misses the SIGCHLD of a pane's process
        that exits while utempter's own handler is in place, e.g. one pane exit in ten: the
        process stays a zombie, the pane dead without a status, and its pane-died hook
        unfired, until some other child of the server exits. ``run-shell true`` is such a
        child; tmux reaps every exited child when it ends. A failure here only leaves the
        status for a later listing, which finds any real tmux trouble itself.
        """
        with contextlib.suppress(TmuxError):
            await self.run("run-shell", "true")

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
        ticket_id: str | None = None,
    ) -> None:
        """Start a detached session, labelled with our id and its ticket in the same tmux
        command, so no listing ever sees it unlabelled.

        With a ``command`` the window also gets ``remain-on-exit`` in that same command: even
        a command that fails at once (``claude: command not found``, exit 127) leaves its dead
        pane, whose screen and exit status the next listing collects. The pane-died hook
        detaches its clients then, tmux's "Pane is dead" line is left out of the screen, and
        a pipe makes tmux read the command's last words before it lets the pane die
        (``DRAIN_BEFORE_EXIT_PIPE``). A plain shell (no command) ends with its shell, as usual.
        """
        start = ["new-session", "-d", "-s", name, "-x", str(cols), "-y", str(rows)]
        start += ["-c", str(cwd)]
        for key, value in env.items():
            start += ["-e", f"{key}={value}"]
        if command:
            start += ["--", command]
        commands = [start, ["set-option", ID_OPTION, aiwf_id]]
        if ticket_id:
            commands.append(["set-option", TICKET_OPTION, ticket_id])
        if command:
            commands += [
                ["set-option", "-w", "remain-on-exit", "on"],
                ["set-option", "-w", "remain-on-exit-format", ""],
                ["set-hook", "-w", "pane-died", DETACH_WHEN_FINISHED],
                ["pipe-pane", DRAIN_BEFORE_EXIT_PIPE],
            ]
        code, _, err = await self.run(*command_sequence(*commands), check=False)
        if code != 0:
            if "duplicate session" in err:
                raise DuplicateSessionError(f"a tmux session named {name!r} exists already")
            raise self.failure("new-session", code, err)

    async def set_aiwf_id(self, tmux_id: str, aiwf_id: str) -> None:
        await self._on_session(tmux_id, "set-option", "-t", tmux_id, ID_OPTION, aiwf_id)

    async def kill_session(self, tmux_id: str) -> None:
        await self._on_session(tmux_id, "kill-session", "-t", tmux_id)

    async def pane_exited(self, tmux_id: str) -> bool:
        """Whether the command of the session's only pane has exited, e.g. True for a session
        started with ``sh -c 'exit 3'`` a moment ago. SessionNotFoundError when it is gone."""
        out = await self._on_session(
            tmux_id, "display-message", "-p", "-t", tmux_id, PANE_EXITED_FORMAT
        )
        return out.strip() == "1"

    async def capture_last_screen(self, tmux_id: str) -> str:
        """The text a finished session's pane shows, with some history above it, as
        ``last_screen`` keeps it; e.g. ``"$ claude\\nclaude: command not found"``.
        SessionNotFoundError when the session is gone meanwhile."""
        history = str(-LAST_SCREEN_HISTORY_LINES)
        captured = await self._on_session(
            tmux_id, "capture-pane", "-p", "-J", "-S", history, "-t", tmux_id
        )
        return last_screen(captured)

    async def send_text(self, tmux_id: str, text: str, *, enter: bool) -> None:
        """Type ``text`` literally into the session's active pane, then Enter when asked."""
        for part in split_utf8(text, SEND_CHUNK_BYTES):
            literal = tmux_argument(part)
            await self._on_session(tmux_id, "send-keys", "-t", tmux_id, "-l", "--", literal)
        if enter:
            await self._on_session(tmux_id, "send-keys", "-t", tmux_id, "Enter")

    async def _on_session(self, tmux_id: str, *args: str) -> str:
        """Run a command on one session and return its output; SessionNotFoundError when the
        session (or the whole server) is gone."""
        code, out, err = await self.run(*args, check=False)
        if code != 0:
            failure = self.failure(args[0], code, err)
            if isinstance(failure, TmuxUnavailableError):
                raise failure
            if "can't find" in err or any(marker in err for marker in NO_SERVER_MARKERS):
                raise SessionNotFoundError(f"tmux session {tmux_id} is gone")
            raise failure
        return out

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
