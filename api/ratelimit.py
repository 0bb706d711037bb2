"""The upload rate limit per caller (API key name, or client address for anonymous callers).

Built on the ``limits`` library's moving-window strategy. The counters live where ``storage_uri``
says: ``memory://`` (per process, the embedded runtime) or the Redis broker's URL, so every API
replica shares one budget per caller. If the shared storage cannot be reached, the limiter lets the
upload through and logs a warning: it is an abuse brake, and the upload itself still needs the
database and the broker.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from api.errors import RateLimited

log = logging.getLogger(__name__)

NAMESPACE = "lore-uploads"
"""Key namespace of the upload counters in the shared storage."""


class RateLimiter:
    """Allows at most ``limit`` events per ``window_s`` seconds per key.

    Args:
        limit: Events allowed in one window.
        window_s: Window length in whole seconds.
        storage_uri: ``memory://`` or a ``redis://`` URL (see the ``limits`` library).
    """

    def __init__(self, limit: int, window_s: float = 60.0, *, storage_uri: str = "memory://") -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if window_s < 1:
            raise ValueError("window_s must be at least 1")
        self.limit = limit
        self.window_s = int(window_s)
        self.storage_uri = storage_uri
        self._item = RateLimitItemPerSecond(limit, self.window_s)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def hit(self, key: str) -> None:
        """Count one event for ``key``.

        Raises:
            RateLimited: The key already used its ``limit`` in the current window (the event is not
                counted); the error carries a ``Retry-After`` header.
        """
        try:
            allowed = self._limiter.hit(self._item, NAMESPACE, key)
            if allowed:
                return
            stats = self._limiter.get_window_stats(self._item, NAMESPACE, key)
        except Exception as exc:  # noqa: BLE001 - the storage's own errors (redis) vary by backend
            log.warning("rate limit storage %s unavailable, upload allowed: %s", self.storage_uri, exc)
            return
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"more than {self.limit} uploads in {self.window_s} s; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
