"""The peer: terminado (tornado) serving a command per WebSocket client, for run.py.

Usage: python terminado_server.py PORT [--shared] -- COMMAND...
``--shared`` gives all clients one pty (SingleTermManager); otherwise each client gets its own
pty running COMMAND (UniqueTermManager), which is what tmux-sessions does with ``tmux attach``.
"""

from __future__ import annotations

import argparse
import asyncio

import tornado.web
from terminado.management import SingleTermManager, UniqueTermManager
from terminado.websocket import TermSocket


async def serve(port: int, command: list[str], shared: bool) -> None:
    manager_class = SingleTermManager if shared else UniqueTermManager
    manager = manager_class(shell_command=command)
    application = tornado.web.Application(
        [(r"/websocket", TermSocket, {"term_manager": manager})],
        websocket_max_message_size=1024 * 1024,
    )
    application.listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--shared", action="store_true")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.command, args.shared))


if __name__ == "__main__":
    main()
