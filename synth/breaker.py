"""A circuit breaker per model endpoint.

States::

    closed ──(N consecutive failures)──> open ──(reset_s elapsed)──> half-open
      ^                                   ^                              │
      └────────────(trial succeeds)───────┼──────────────────────────────┤
                                          └──────(trial fails)───────────┘

While open, calls are refused without touching the network, so a dead server costs nothing and the
jobs wait in the database instead of burning retries. After ``reset_s`` one trial call is let through
(half-open); its outcome closes or re-opens the breaker. A trial whose outcome is never reported (the
caller crashed) is given up after another ``reset_s`` so the breaker cannot stay stuck.

Thread-safe; the clock is injectable (a ``time.monotonic``-like callable) so tests need not sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Counts consecutive failures of one endpoint and refuses calls while it is believed down.

    Args:
        failure_threshold: consecutive failures that open the breaker.
        reset_s: seconds an open breaker waits before it lets one trial call through.
        clock: monotonic clock in seconds.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_s <= 0:
            raise ValueError("reset_s must be positive")
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started: float | None = None

    @property
    def state(self) -> State:
        """The current state, as a caller asking now would see it."""
        with self._lock:
            if self._state == "open" and self._clock() - self._opened_at >= self.reset_s:
                return "half_open"
            return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        with self._lock:
            return self._failures

    def allow(self) -> bool:
        """Ask to make one call. In half-open state only one trial call at a time is allowed.

        Returns:
            True when the call may go ahead; the caller must then report ``record_success`` or
            ``record_failure``.
        """
        with self._lock:
            now = self._clock()
            if self._state == "closed":
                return True
            if self._state == "open":
                if now - self._opened_at < self.reset_s:
                    return False
                self._state = "half_open"
                self._trial_started = now
                return True
            # half-open: one trial in flight; a trial never reported is abandoned after reset_s
            if self._trial_started is None or now - self._trial_started >= self.reset_s:
                self._trial_started = now
                return True
            return False

    def retry_after(self) -> float:
        """Seconds until the breaker would let a call through (0 when it would now)."""
        with self._lock:
            now = self._clock()
            if self._state == "closed":
                return 0.0
            if self._state == "open":
                return max(0.0, self._opened_at + self.reset_s - now)
            if self._trial_started is None:
                return 0.0
            return max(0.0, self._trial_started + self.reset_s - now)

    def record_success(self) -> None:
        """The endpoint answered (whatever the answer's quality): close the breaker."""
        with self._lock:
            self._state = "closed"
            self._failures = 0
            self._trial_started = None

    def record_failure(self) -> None:
        """The endpoint failed (connection error, timeout, 5xx, 429): count it, maybe open."""
        with self._lock:
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.failure_threshold:
                self._state = "open"
                self._opened_at = self._clock()
                self._trial_started = None
