"""The admission gate: bounded running and waiting places."""

from __future__ import annotations

import asyncio

import pytest
from whisper_service.gate import ConcurrencyGate, ServerBusy


async def test_waits_up_to_the_queue_bound_then_refuses() -> None:
    gate = ConcurrencyGate(max_active=1, max_waiting=1)
    release = asyncio.Event()
    order: list[str] = []

    async def job(name: str) -> None:
        async with gate.slot():
            order.append(name)
            await release.wait()

    first = asyncio.create_task(job("first"))
    second = asyncio.create_task(job("second"))
    while gate.active != 1 or gate.waiting != 1:
        await asyncio.sleep(0)
    with pytest.raises(ServerBusy, match="1 running and 1 waiting"):
        async with gate.slot():
            pass
    release.set()
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
    assert (gate.active, gate.waiting) == (0, 0)


async def test_a_failing_job_frees_its_place() -> None:
    gate = ConcurrencyGate(max_active=1, max_waiting=0)
    with pytest.raises(ZeroDivisionError):
        async with gate.slot():
            _ = 1 / 0
    async with gate.slot():
        assert gate.active == 1
