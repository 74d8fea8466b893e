"""Failed-login throttle per client address.

Example: with ``LoginRateLimiter(max_failures=5, window_seconds=900)``, the sixth try within 15
minutes of five failures from one address is refused until the oldest failure is 15 minutes old.
"""

from __future__ import annotations

import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class LoginRateLimiter:
    """Counts failures per client in a sliding window; memory stays bounded by ``max_clients``."""

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.clock = clock
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.get(client)
        if failures is None:
            return deque()
        horizon = self.clock() - self.window_seconds
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[client]
        return failures

    def retry_after(self, client: str) -> float | None:
        """Seconds the client must wait before trying again, or None when it may try now."""
        failures = self._recent(client)
        if len(failures) < self.max_failures:
            return None
        return max(failures[0] + self.window_seconds - self.clock(), 0.0)

    def record_failure(self, client: str) -> None:
        failures = self._recent(client)
        failures.append(self.clock())
        self._failures[client] = failures
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def reset(self, client: str) -> None:
        self._failures.pop(client, None)


class TrustedProxies:
    """The peers whose forwarded headers are believed: names resolved (and re-resolved every
    ``ttl`` seconds, a recreated nginx container gets a new address) or literal addresses.

    With no names every peer is trusted, as before the setting existed (standalone use).

    >>> nginx = TrustedProxies(["127.0.0.1"])
    >>> nginx.trusts("127.0.0.1"), nginx.trusts("10.9.9.9")
    (True, False)
    """

    def __init__(
        self, names: list[str], ttl: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.names = names
        self.ttl = ttl
        self.clock = clock
        self._addresses: set[str] = set()
        self._resolved_at: float | None = None

    def _resolve(self) -> set[str]:
        now = self.clock()
        if self._resolved_at is None or now - self._resolved_at > self.ttl:
            found: set[str] = set()
            for name in self.names:
                try:
                    found |= {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
                except OSError:
                    continue  # not resolvable now: trusted again once it is
            self._addresses, self._resolved_at = found, now
        return self._addresses

    def trusts(self, peer: str | None) -> bool:
        if not self.names:
            return True
        return peer is not None and peer in self._resolve()


def client_address(
    peer: str | None, forwarded_for: str | None, real_ip: str | None, *, trust_proxy: bool
) -> str:
    """The client's address as nginx saw it.

    nginx appends ``$remote_addr`` to X-Forwarded-For, so only the rightmost entry is its own;
    anything to the left came from the client and may be forged.

    >>> client_address("172.18.0.5", "6.6.6.6, 203.0.113.9", None, trust_proxy=True)
    '203.0.113.9'
    """
    if trust_proxy:
        if forwarded_for:
            rightmost = forwarded_for.split(",")[-1].strip()
            if rightmost:
                return rightmost
        if real_ip and real_ip.strip():
            return real_ip.strip()
    return peer or "unknown"
