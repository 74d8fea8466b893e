"""One browser terminal = one ``tmux attach`` client in its own pty, read with asyncio.

Flow control: output waits in a per-client buffer of at most ``buffer_limit`` bytes. When the
WebSocket cannot keep up and the buffer fills, we stop reading that pty; the tmux client's
writes then block and the tmux server throttles that client alone (it skips intermediate
frames and redraws once the client catches up). Other clients and server memory are untouched.

Example::

    client = PtyClient(tmux.attach_command("$1", read_only=False), cols=80, rows=24)
    await client.start()
    client.write(b"echo hi\\r")
    chunk = await client.read()     # bytes of the tmux client's screen updates; None at the end
    await client.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import struct
import termios
from collections import deque
from collections.abc import Callable

READ_SIZE = 64 * 1024
MAX_FRAME_BYTES = 256 * 1024
MAX_PENDING_INPUT = 1024 * 1024


class InputOverflowError(RuntimeError):
    """The terminal does not take input as fast as the client sends it."""


def _terminal_owner(slave: int) -> Callable[[], None]:
    """Child setup: a new session whose controlling terminal is the pty, so that resizes
    reach tmux as SIGWINCH. Done by hand because event loops order setsid differently."""

    def setup() -> None:  # pragma: no cover - runs in the child before exec
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    return setup


def set_window_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtyClient:
    """A child process on a pty, with bounded, pausable output and non-blocking input."""

    def __init__(
        self,
        argv: list[str],
        *,
        cols: int,
        rows: int,
        env: dict[str, str] | None = None,
        buffer_limit: int = 1024 * 1024,
    ) -> None:
        self.argv = argv
        self.cols, self.rows = cols, rows
        self.env = env
        self.buffer_limit = buffer_limit
        self.process: asyncio.subprocess.Process | None = None
        self._fd = -1
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._eof = False
        self._ready = asyncio.Event()
        self._pending_input = bytearray()
        self._loop = asyncio.get_running_loop()

    @property
    def buffered(self) -> int:
        """Bytes read from the pty and not yet taken by ``read()``."""
        return self._buffered

    @property
    def paused(self) -> bool:
        return self._paused

    async def start(self) -> None:
        master, slave = pty.openpty()
        set_window_size(master, self.cols, self.rows)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=self.env,
                preexec_fn=_terminal_owner(slave),
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._fd = master
        self._loop.add_reader(master, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: every process on the pty is gone
            data = b""
        if not data:
            self._eof = True
            self._loop.remove_reader(self._fd)
        else:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered >= self.buffer_limit:
                self._loop.remove_reader(self._fd)
                self._paused = True
        self._ready.set()

    async def read(self) -> bytes | None:
        """The next output (several reads joined, up to 256 KiB); None once the client ended."""
        while not self._chunks:
            if self._eof:
                return None
            self._ready.clear()
            await self._ready.wait()
        parts = [self._chunks.popleft()]
        size = len(parts[0])
        while self._chunks and size + len(self._chunks[0]) <= MAX_FRAME_BYTES:
            chunk = self._chunks.popleft()
            parts.append(chunk)
            size += len(chunk)
        self._buffered -= size
        if self._paused and self._buffered <= self.buffer_limit // 2 and self._fd >= 0:
            self._paused = False
            self._loop.add_reader(self._fd, self._on_readable)
        return b"".join(parts)

    def write(self, data: bytes) -> None:
        """Send keystrokes; what the pty cannot take now is written when it can."""
        if self._fd < 0 or self._eof:
            return
        if self._pending_input:
            self._queue_input(data)
            return
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except OSError:
            return
        if written < len(data):
            self._queue_input(data[written:])

    def _queue_input(self, data: bytes) -> None:
        if len(self._pending_input) + len(data) > MAX_PENDING_INPUT:
            raise InputOverflowError("the terminal is not reading input; too much is waiting")
        first = not self._pending_input
        self._pending_input += data
        if first:
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            written = os.write(self._fd, self._pending_input)
        except BlockingIOError:
            return
        except OSError:
            written = len(self._pending_input)
        del self._pending_input[:written]
        if not self._pending_input:
            self._loop.remove_writer(self._fd)

    def resize(self, cols: int, rows: int) -> None:
        """Set the pty size; the kernel tells tmux with SIGWINCH."""
        self.cols, self.rows = cols, rows
        if self._fd >= 0:
            set_window_size(self._fd, cols, rows)

    async def close(self) -> None:
        """Detach: hang up the pty, end the tmux client, reap it."""
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            os.close(self._fd)
            self._fd = -1
        self._eof = True
        self._ready.set()
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGHUP)
        try:
            await asyncio.wait_for(process.wait(), 2.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
