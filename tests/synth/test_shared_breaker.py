"""Circuit breakers sharing one state through a real Redis: what one worker learns, all act on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from synth.breaker import CircuitBreaker
from synth.shared_breaker import RedisCircuitBreaker
from tests.services import RedisServer

pytestmark = [pytest.mark.services]

URL = "http://model-a:8000/v1"


@pytest.fixture(scope="module")
def client() -> Iterator[redis.Redis]:
    server = RedisServer()
    server.start()
    try:
        yield redis.Redis.from_url(server.url)
    finally:
        server.close()


def test_two_workers_trip_and_recover_together(client: redis.Redis) -> None:
    now = [1000.0]
    a = RedisCircuitBreaker(client, URL, 3, 30.0, clock=lambda: now[0])
    b = RedisCircuitBreaker(client, URL, 3, 30.0, clock=lambda: now[0])
    other = RedisCircuitBreaker(client, "http://model-b:8000/v1", 3, 30.0, clock=lambda: now[0])
    a.record_failure()
    b.record_failure()
    assert a.failures == b.failures == 2
    assert b.allow()
    a.record_failure()  # the third failure, seen by another worker, opens b's breaker too
    assert b.state == "open"
    assert not b.allow()
    assert b.retry_after() == pytest.approx(30.0)
    assert other.allow()  # another endpoint keeps its own state
    now[0] += 30.0
    assert a.state == b.state == "half_open"
    assert a.allow()  # one trial among all workers
    assert not b.allow()
    a.record_success()
    assert b.state == "closed"
    assert b.failures == 0
    assert b.allow()


def test_a_failed_trial_reopens_for_everyone(client: redis.Redis) -> None:
    now = [5000.0]
    url = "http://model-c:8000/v1"
    a = RedisCircuitBreaker(client, url, 1, 10.0, clock=lambda: now[0])
    b = RedisCircuitBreaker(client, url, 1, 10.0, clock=lambda: now[0])
    a.record_failure()
    now[0] += 10.0
    assert b.allow()  # b takes the trial
    b.record_failure()
    assert a.state == "open"
    assert not a.allow()


def test_unreachable_redis_falls_back_to_the_process_breaker() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    breaker = RedisCircuitBreaker(dead, URL, 2, 30.0)
    local = CircuitBreaker(2, 30.0)
    for b in (breaker, local):
        assert b.allow()
        b.record_failure()
        b.record_failure()
    assert breaker.state == local.state == "open"
    assert not breaker.allow()
