"""A bounded admission gate: a few requests run, a few wait, the rest are turned away at once.

Whisper inference saturates the CPU, so piling up requests only makes every one of them late.
The gate lets ``max_active`` run, queues up to ``max_waiting`` more, and raises ``ServerBusy``
beyond that so the route can answer 503 with ``Retry-After``.

Example::

    gate = ConcurrencyGate(max_active=1, max_waiting=4)
    async with gate.slot():
        await asyncio.to_thread(transcribe, samples)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class ServerBusy(RuntimeError):
    """Every running and waiting place is taken."""


class ConcurrencyGate:
    def __init__(self, max_active: int, max_waiting: int) -> None:
        self.max_active = max_active
        self.max_waiting = max_waiting
        self._semaphore = asyncio.Semaphore(max_active)
        self.active = 0
        self.waiting = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one running place for the ``async with`` body; raise ``ServerBusy`` if full."""
        if self.active + self.waiting >= self.max_active + self.max_waiting:
            raise ServerBusy(
                f"{self.active} running and {self.waiting} waiting (limits "
                f"WHISPER_MAX_CONCURRENCY={self.max_active}, WHISPER_MAX_QUEUE={self.max_waiting})"
            )
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._semaphore.release()
