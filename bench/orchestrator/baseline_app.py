"""Peer for the latency benchmark: the plain way to serve the list.

It reads ``pending-tickets.json`` and validates it into the response model on every request, as a
simple FastAPI daemon without an in-memory cache does.

    .venv/bin/python bench/orchestrator/baseline_app.py DATA_DIR PORT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from orchestrator.models import Ticket, TicketList


def build(data_dir: Path) -> FastAPI:
    app = FastAPI()

    @app.get("/api/pending-tickets", response_model=TicketList)
    async def pending() -> TicketList:
        rows = json.loads((data_dir / "pending-tickets.json").read_text())
        tickets = [Ticket.model_validate(row) for row in rows]
        return TicketList(tickets=tickets, count=len(tickets))

    return app


if __name__ == "__main__":
    uvicorn.run(
        build(Path(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning"
    )
