"""A sliding-window rate limiter, per caller (API key name, or client address for anonymous callers).

In-process: each API process counts its own callers. That is the right strength for a per-key abuse
brake on uploads; a shared limit across many API replicas would need the broker or database.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from api.errors import RateLimited


class RateLimiter:
    """Allows at most ``limit`` events per ``window_s`` seconds per key.

    Args:
        limit: events allowed in one window.
        window_s: window length in seconds.
        clock: monotonic clock (injectable for tests).
    """

    def __init__(self, limit: int, window_s: float = 60.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Count one event for ``key``.

        Raises:
            RateLimited: the key already used its ``limit`` in the current window (the event is not
                counted); the error carries a ``Retry-After`` header.
        """
        now = self._clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and now - events[0] >= self.window_s:
                events.popleft()
            if len(events) >= self.limit:
                wait = max(1, int(self.window_s - (now - events[0]) + 0.999))
                raise RateLimited(
                    f"more than {self.limit} uploads in {int(self.window_s)} s; retry in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
            events.append(now)
            if len(self._events) > 10_000:  # forget idle callers so the table stays bounded
                for k in [k for k, q in self._events.items() if not q or now - q[-1] >= self.window_s]:
                    del self._events[k]
