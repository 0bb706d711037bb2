"""The system-wide retry budget: retries may be at most a fraction of first attempts.

Per-call retry limits alone multiply under an outage (every call retries its maximum at once); a budget
shared by all calls caps the extra load to ``ratio`` of the real traffic. A retry is allowed only while::

    retries_in_window + 1 <= ratio * first_attempts_in_window + min_retries

``RetryBudget`` is the interface the model client depends on; ``InMemoryRetryBudget`` is the
one-process implementation (a token bucket whose deposits expire: each first attempt deposits
``ratio`` tokens, each retry withdraws one, and both are forgotten after ``window_s``).
``store.retry_budget.LedgerRetryBudget`` implements the same two methods over the ledger's
``model_calls`` rows, so every worker process shares one budget; ``lore.wiring`` uses that one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class RetryBudget(Protocol):
    """What the model client needs from a retry budget."""

    def record_attempt(self) -> None:
        """Count one first attempt (a new logical call)."""

    def try_spend_retry(self) -> bool:
        """Ask for one retry; True means it was granted and counted."""


class InMemoryRetryBudget:
    """A thread-safe retry budget over a sliding time window, for one process.

    Args:
        ratio: retries allowed per first attempt (0.2 = one retry per five calls).
        min_retries: retries always allowed per window, so a quiet system can still retry.
        window_s: the sliding window, in seconds.
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        ratio: float = 0.2,
        *,
        min_retries: int = 3,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ratio < 0:
            raise ValueError("ratio must not be negative")
        if min_retries < 0:
            raise ValueError("min_retries must not be negative")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.ratio = ratio
        self.min_retries = min_retries
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._attempts: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        for q in (self._attempts, self._retries):
            while q and q[0] <= horizon:
                q.popleft()

    def record_attempt(self) -> None:
        """Count one first attempt."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._attempts.append(now)

    def try_spend_retry(self) -> bool:
        """Grant one retry if the window's retries stay within the budget.

        Returns:
            True when the retry is allowed (it is then counted), False when the budget is spent.
        """
        with self._lock:
            now = self._clock()
            self._expire(now)
            allowed = self.ratio * len(self._attempts) + self.min_retries
            if len(self._retries) + 1 > allowed:
                return False
            self._retries.append(now)
            return True

    def snapshot(self) -> dict[str, int]:
        """Counts in the current window: ``{"attempts": n, "retries": m}``."""
        with self._lock:
            self._expire(self._clock())
            return {"attempts": len(self._attempts), "retries": len(self._retries)}
