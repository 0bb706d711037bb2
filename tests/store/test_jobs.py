"""The jobs table: idempotent enqueue, leases, attempts and the dead-letter state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from store.db import make_engine, make_session_factory, unit_of_work
from store.jobs import claim_job, complete_job, due_jobs, enqueue_job, fail_job, job_counts
from store.models import Base, Job, utcnow


@pytest.fixture
def factory(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def test_enqueue_is_idempotent_by_key(factory):
    with unit_of_work(factory) as s:
        a = enqueue_job(s, "extract", "extract:abc", {"source_id": "abc"})
        b = enqueue_job(s, "extract", "extract:abc", {"source_id": "abc"})
        assert a.id == b.id
    with unit_of_work(factory) as s:
        assert job_counts(s) == {"queued": 1}


def test_claim_is_exclusive_until_lease_expires(factory):
    with unit_of_work(factory) as s:
        job_id = enqueue_job(s, "render", "render:1", {}).id
    with unit_of_work(factory) as s:
        assert claim_job(s, job_id, "w1", lease_s=60) is not None
    with unit_of_work(factory) as s:
        assert claim_job(s, job_id, "w2", lease_s=60) is None
        s.execute(update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=1)))
    with unit_of_work(factory) as s:
        assert [j.id for j in due_jobs(s)] == [job_id]  # stuck: swept again
        job = claim_job(s, job_id, "w2", lease_s=60)
        assert job is not None
        assert job.attempts == 2  # a crash redelivery counts as an attempt
        complete_job(s, job)
    with unit_of_work(factory) as s:
        assert claim_job(s, job_id, "w3", lease_s=60) is None
        assert due_jobs(s) == []


def test_exhausted_job_becomes_dead(factory):
    with unit_of_work(factory) as s:
        job_id = enqueue_job(s, "extract", "extract:x", {}, max_attempts=2).id
    for _ in range(2):
        with unit_of_work(factory) as s:
            job = claim_job(s, job_id, "w", lease_s=60)
            assert job is not None
            fail_job(s, job, "model said no", retry_in_s=0)
    with unit_of_work(factory) as s:
        job = s.get(Job, job_id)
        assert job.state == "dead"
        assert "model said no" in job.last_error
        assert claim_job(s, job_id, "w", lease_s=60) is None


def test_requeue_finished(factory):
    with unit_of_work(factory) as s:
        job = enqueue_job(s, "render", "render:e1", {})
        job.state = "done"
    with unit_of_work(factory) as s:
        job = enqueue_job(s, "render", "render:e1", {"n": 2}, requeue_finished=True)
        assert job.state == "queued"
        assert job.payload == {"n": 2}


def test_work_arriving_during_a_run_makes_it_run_again(factory):
    with unit_of_work(factory) as s:
        job_id = enqueue_job(s, "render", "render:7", {"entity_id": 7}).id
    with unit_of_work(factory) as s:
        job = claim_job(s, job_id, "w1", lease_s=60)
        assert job is not None
    with unit_of_work(factory) as s:  # an extraction bumps the entity while the render runs
        enqueue_job(s, "render", "render:7", {"entity_id": 7}, requeue_finished=True)
    with unit_of_work(factory) as s:
        job = s.get(Job, job_id)
        assert complete_job(s, job) is True
        assert job.state == "queued"
        assert "rerun" not in job.payload
    with unit_of_work(factory) as s:
        job = claim_job(s, job_id, "w1", lease_s=60)
        assert complete_job(s, job) is False
        assert job.state == "done"
