"""The answer while tmux is briefly unavailable: 503, ``Retry-After`` and one sentence.

Both the HTTP API and the terminal handshake use it, so a caller sees the same words.

Example: ``unavailable_detail(TmuxUnavailableError("tmux list-sessions was ended by SIGTERM"))``
is "tmux is unavailable for a moment (tmux list-sessions was ended by SIGTERM); retry in 5 s."
"""

from __future__ import annotations

from tmux_sessions.tmux import TmuxUnavailableError

# A restart of the service or of the tmux server takes a few seconds.
RETRY_AFTER_SECONDS = 5


def unavailable_detail(error: TmuxUnavailableError) -> str:
    return f"tmux is unavailable for a moment ({error}); retry in {RETRY_AFTER_SECONDS} s."


def retry_after_header() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}
