"""The ledger-backed retry budget is one budget for every process that records model calls in the ledger."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bench.fake_llm import FakeLLM
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import Base, ModelCall, utcnow
from store.retry_budget import LedgerRetryBudget


@pytest.fixture
def db_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def factory(db_url):
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def _calls(factory, *, first: int, retries: int, age_s: float = 0.0) -> None:
    at = utcnow() - timedelta(seconds=age_s)
    with unit_of_work(factory) as session:
        for attempt in [1] * first + [2] * retries:
            session.add(ModelCall(stage="extract", model="m", endpoint="e", attempt=attempt, outcome="transient",
                                  created_at=at))


def test_a_second_process_sees_the_retries_of_the_first(factory):
    _calls(factory, first=10, retries=4)  # allowed: 0.2 * 10 + 3 = 5 retries in the window
    one, other = LedgerRetryBudget(factory, 0.2), LedgerRetryBudget(factory, 0.2)
    assert one.try_spend_retry()  # the fifth
    _calls(factory, first=0, retries=1)  # ... which the first process's client records when it returns
    assert not other.try_spend_retry()  # a fresh process (no local counts) is refused by the ledger's
    assert not one.try_spend_retry()
    assert other.snapshot() == {"attempts": 10, "retries": 5}


def test_only_the_window_counts(factory):
    _calls(factory, first=0, retries=50, age_s=120)
    budget = LedgerRetryBudget(factory, 0.2, min_retries=2, window_s=60)
    assert budget.try_spend_retry()
    assert budget.try_spend_retry()
    assert not budget.try_spend_retry()  # its own two grants, not yet recorded, still count


def test_an_unreadable_ledger_falls_back_to_local_counts(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables: every count fails
    budget = LedgerRetryBudget(make_session_factory(engine), 0.0, min_retries=1)
    assert budget.try_spend_retry()
    assert not budget.try_spend_retry()
    engine.dispose()


def _hammer(db_url: str, base_url: str, calls: int) -> None:
    from synth.client import Endpoint, ModelClient, Timeouts
    from synth.errors import ModelUnavailable
    from synth.prompts import extract

    engine = make_engine(db_url)
    factory = make_session_factory(engine)

    def record(rec) -> None:  # the shape lore.wiring's recorder writes
        with unit_of_work(factory) as session:
            session.add(ModelCall(stage=rec.stage, model=rec.model, endpoint=rec.endpoint, attempt=rec.attempt,
                                  outcome=rec.outcome))

    client = ModelClient(
        [Endpoint(base_url, "fake")], timeouts=Timeouts(connect_s=1, read_s=5, total_s=30), max_retries=10,
        backoff_base_s=0.01, backoff_max_s=0.02, breaker_failures=10_000, context_tokens=32768,
        retry_budget=LedgerRetryBudget(factory, 0.0, min_retries=4), recorder=record,
    )
    messages = extract.build_messages(extract.ExtractContext("The API gateway restarts when etcd loses quorum."))
    for _ in range(calls):
        with pytest.raises(ModelUnavailable):
            client.complete("extract", messages, extract.Extraction)
    client.close()
    engine.dispose()


def test_three_processes_against_a_failing_model_share_one_budget(db_url, factory):
    with FakeLLM(failure_rate=1.0) as fake:
        ctx = multiprocessing.get_context("fork")  # the target lives in this test module
        procs = [ctx.Process(target=_hammer, args=(db_url, fake.base_url, 4)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0, 0]
    with factory() as session:
        first = session.scalar(select(func.count()).where(ModelCall.attempt == 1))
        retries = session.scalar(select(func.count()).where(ModelCall.attempt > 1))
    assert first == 12
    # 4 retries in all (ratio 0), plus at most one in flight per other process; per-process budgets
    # would have allowed 12, and per-call limits 120.
    assert 4 <= retries <= 4 + 2
