"""A circuit breaker whose state lives in Redis, shared by every worker on every host.

Same states and rules as :class:`synth.breaker.CircuitBreaker` (closed -> open after N consecutive
failures -> one half-open trial after ``reset_s`` -> closed or open again), but the counters sit in
one Redis hash per endpoint and every transition is one Lua script, so the check and the update are
atomic across processes. When one worker sees a server fail, every worker stops calling it. Times
are wall-clock seconds (``time.time``), comparable between hosts.

If Redis cannot be reached, the breaker falls back to a local one for that call (and logs it): a
broken broker must not make a healthy model server look down.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from synth.breaker import CircuitBreaker, State

log = logging.getLogger(__name__)

KEY_TTL_S = 86_400
"""A breaker hash nobody touched for a day is dropped."""

_ALLOW = """
local s = redis.call('HGET', KEYS[1], 'state') or 'closed'
local now, reset = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if s == 'closed' then return 1 end
if s == 'open' then
  if now - tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0') < reset then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'trial_started', ARGV[1])
  return 1
end
local t = redis.call('HGET', KEYS[1], 'trial_started')
if (not t) or now - tonumber(t) >= reset then
  redis.call('HSET', KEYS[1], 'trial_started', ARGV[1])
  return 1
end
return 0
"""
_FAILURE = """
local f = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local s = redis.call('HGET', KEYS[1], 'state') or 'closed'
if s == 'half_open' or f >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1])
  redis.call('HDEL', KEYS[1], 'trial_started')
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return f
"""


class RedisCircuitBreaker(CircuitBreaker):
    """A :class:`CircuitBreaker` for one endpoint whose state is shared through Redis.

    Args:
        client: A ``redis.Redis`` client.
        endpoint: The endpoint's URL (the hash key is derived from it).
        failure_threshold: Consecutive failures that open the breaker.
        reset_s: Seconds an open breaker waits before one trial call.
        clock: Wall clock in seconds.
    """

    def __init__(
        self,
        client: Any,
        endpoint: str,
        failure_threshold: int = 5,
        reset_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(failure_threshold, reset_s, clock=clock)
        self.key = "lore:breaker:" + hashlib.sha256(endpoint.encode()).hexdigest()[:24]
        self._redis = client
        self._allow = client.register_script(_ALLOW)
        self._failure = client.register_script(_FAILURE)

    def _read(self) -> dict[str, str] | None:
        try:
            raw = self._redis.hgetall(self.key)
        except Exception as exc:  # noqa: BLE001 - redis raises several connection error types
            log.warning("shared breaker state unavailable, using this process's: %s", exc)
            return None
        return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in raw.items()}

    @property
    def state(self) -> State:
        data = self._read()
        if data is None:
            return super().state
        state = data.get("state", "closed")
        if state == "open" and self._clock() - float(data.get("opened_at", 0)) >= self.reset_s:
            return "half_open"
        return "open" if state == "open" else "half_open" if state == "half_open" else "closed"

    @property
    def failures(self) -> int:
        data = self._read()
        return super().failures if data is None else int(data.get("failures", 0))

    def allow(self) -> bool:
        try:
            return bool(self._allow(keys=[self.key], args=[self._clock(), self.reset_s, KEY_TTL_S]))
        except Exception as exc:  # noqa: BLE001
            log.warning("shared breaker state unavailable, using this process's: %s", exc)
            return super().allow()

    def retry_after(self) -> float:
        data = self._read()
        if data is None:
            return super().retry_after()
        now, state = self._clock(), data.get("state", "closed")
        if state == "open":
            return max(0.0, float(data.get("opened_at", 0)) + self.reset_s - now)
        if state == "half_open" and "trial_started" in data:
            return max(0.0, float(data["trial_started"]) + self.reset_s - now)
        return 0.0

    def record_success(self) -> None:
        super().record_success()
        try:
            pipe = self._redis.pipeline()
            pipe.hset(self.key, mapping={"state": "closed", "failures": 0})
            pipe.hdel(self.key, "trial_started")
            pipe.expire(self.key, KEY_TTL_S)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001
            log.warning("shared breaker state unavailable: %s", exc)

    def record_failure(self) -> None:
        super().record_failure()
        try:
            self._failure(keys=[self.key], args=[self._clock(), self.failure_threshold, KEY_TTL_S])
        except Exception as exc:  # noqa: BLE001
            log.warning("shared breaker state unavailable: %s", exc)
