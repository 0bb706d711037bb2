"""The retry budget shared by every process that writes to one ledger.

The model client asks a budget before each retry (``synth.budget``: retries may be at most ``ratio`` of
first attempts in a sliding window, plus ``min_retries``). An in-process budget is not system-wide:
N worker processes would each allow their own share, so an outage multiplies load by N. This budget
counts from the ledger instead: every attempt of every process is a ``model_calls`` row (``attempt`` 1
for a first attempt, more for a retry or a repair) written before the client decides whether to retry,
so all processes see the same window.

A grant is counted when its row is written, after the retried request returns; until then only the
granting process knows of it (it also keeps its own recent grants). Other processes may therefore
over-grant by the retries in flight at that moment, at most one per concurrent model call. Should the
ledger be unreadable, the decision falls back to this process's own counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from store.models import ModelCall, utcnow

log = logging.getLogger(__name__)

__all__ = ["LedgerRetryBudget"]


class LedgerRetryBudget:
    """A retry budget over the ``model_calls`` rows of the last ``window_s`` seconds, for all processes.

    Args:
        session_factory: opens a ledger session (read only here).
        ratio: retries allowed per first attempt.
        min_retries: retries always allowed per window.
        window_s: the sliding window, in seconds.
        now: the wall clock (the ledger's timestamps are UTC wall time; injectable for tests).
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        ratio: float = 0.2,
        *,
        min_retries: int = 3,
        window_s: float = 60.0,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        if ratio < 0 or min_retries < 0 or window_s <= 0:
            raise ValueError("ratio and min_retries must not be negative; window_s must be positive")
        self.session_factory = session_factory
        self.ratio = ratio
        self.min_retries = min_retries
        self.window_s = window_s
        self._now = now
        self._lock = threading.Lock()
        self._attempts: deque[float] = deque()  # this process's counts, for the fallback and in-flight grants
        self._grants: deque[float] = deque()

    def _expire(self, at: float) -> None:
        for q in (self._attempts, self._grants):
            while q and q[0] <= at - self.window_s:
                q.popleft()

    def record_attempt(self) -> None:
        """Count one first attempt in this process (the ledger row is written by the call's recorder)."""
        with self._lock:
            at = time.monotonic()
            self._expire(at)
            self._attempts.append(at)

    def counts(self) -> tuple[int, int]:
        """``(first attempts, retries)`` of every process in the window, from the ledger."""
        since = self._now() - timedelta(seconds=self.window_s)
        with self.session_factory() as session:
            row = session.execute(
                select(
                    func.count().filter(ModelCall.attempt == 1),
                    func.coalesce(func.sum(case((ModelCall.attempt > 1, 1), else_=0)), 0),
                ).where(ModelCall.created_at >= since, ModelCall.outcome != "breaker_open")
            ).one()
        return int(row[0]), int(row[1])

    def try_spend_retry(self) -> bool:
        """Grant one retry if the window's retries, across processes, stay within the budget."""
        try:
            attempts, retries = self.counts()
        except SQLAlchemyError as exc:
            log.warning("retry budget: ledger unreadable (%s); deciding on this process's counts", exc)
            attempts, retries = -1, -1
        with self._lock:
            at = time.monotonic()
            self._expire(at)
            attempts = max(attempts, len(self._attempts))
            retries = max(retries, len(self._grants))
            if retries + 1 > self.ratio * attempts + self.min_retries:
                return False
            self._grants.append(at)
            return True

    def snapshot(self) -> dict[str, int]:
        """Counts in the current window, across processes: ``{"attempts": n, "retries": m}``."""
        attempts, retries = self.counts()
        return {"attempts": attempts, "retries": retries}
