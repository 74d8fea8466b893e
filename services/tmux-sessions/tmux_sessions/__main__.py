"""``python -m tmux_sessions``: serve on TMUX_SESSIONS_HOST:TMUX_SESSIONS_PORT with uvicorn."""

from __future__ import annotations

import logging
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from tmux_sessions.core.config import Settings
from tmux_sessions.core.secrets import SecretFileError
from tmux_sessions.fileio import StateFileError
from tmux_sessions.main import create_app
from tmux_sessions.shutdown import Shutdown
from tmux_sessions.users import UserError

# Larger frames than this are refused by the WebSocket layer itself (close 1009);
# input frames over 64 KiB are refused by the terminal route.
WS_MAX_FRAME_BYTES = 1024 * 1024
# The exit status uvicorn itself uses when it could not start serving (e.g. port in use).
STARTUP_FAILURE = 3


class Server(uvicorn.Server):
    """uvicorn's server that also raises our shutdown flag the moment a stop signal arrives,
    while requests in flight are still being answered."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self.shutdown_flag = shutdown

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.shutdown_flag.begin()
        super().handle_exit(sig, frame)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    shutdown = Shutdown()
    try:
        settings = Settings()
        app = create_app(settings, shutdown)
    except ValidationError as error:
        first = error.errors()[0]
        field = "TMUX_SESSIONS_" + ".".join(str(part) for part in first["loc"]).upper()
        sys.exit(f"tmux-sessions: {field}: {first['msg']}")
    except (SecretFileError, StateFileError, UserError) as error:
        sys.exit(f"tmux-sessions: {error}")
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_max_size=WS_MAX_FRAME_BYTES,
        proxy_headers=False,
    )
    server = Server(config, shutdown)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
