"""Whether the service has been told to stop, for code that must not trust tmux then.

When the container stops, the SIGTERM can reach the tmux clients we run as well as the
service; a tmux client ended that way may exit 0 with no output, which would read as "no
sessions". Code that sees ``shutdown.begun`` treats such answers as cut short instead.

Example::

    shutdown = Shutdown()
    shutdown.begun      # -> False
    shutdown.begin()    # called by the server's signal handler
    shutdown.begun      # -> True
"""

from __future__ import annotations


class Shutdown:
    """A one-way flag: set once the server starts shutting down, never cleared."""

    def __init__(self) -> None:
        self._begun = False

    @property
    def begun(self) -> bool:
        return self._begun

    def begin(self) -> None:
        self._begun = True
