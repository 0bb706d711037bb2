"""The sweep and dispatch: the jobs table is the truth, the queue only carries hints.

Real SQLite ledger, real Celery app on the embedded (SQLite) broker; messages are read back off the
broker to check what was sent where.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta

from sqlalchemy import update

from store.db import unit_of_work
from store.jobs import claim_job, enqueue_job
from store.models import Job, utcnow
from tests.services import free_port
from workers.celery_app import make_celery
from workers.sweep import dispatch_jobs, queue_backlog, release_dead_leases, sweep

from .conftest import drain

OLD = timedelta(minutes=5)


def _job(factory, kind, key, *, state="queued", age=OLD, **values):
    """A job in ``state`` whose last change was ``age`` ago."""
    with unit_of_work(factory) as s:
        job = enqueue_job(s, kind, key, {})
        values = {"state": state, "updated_at": utcnow() - age, "next_attempt_at": utcnow() - age, **values}
        s.execute(update(Job).where(Job.id == job.id).values(**values))
        return job.id


def _sent(app):
    return {q: sorted(args[0] for _name, args in msgs) for q, msgs in drain(app).items()}


def test_due_jobs_go_to_their_kinds_queue_and_others_stay(app, factory):
    queued = _job(factory, "extract", "a")
    failed_due = _job(factory, "render", "b", state="failed", attempts=1)
    catalog = _job(factory, "catalog", "c")
    _job(factory, "render", "d", state="failed", attempts=1, next_attempt_at=utcnow() + timedelta(hours=1))
    _job(factory, "extract", "e", state="running", lease_until=utcnow() + timedelta(hours=1))
    _job(factory, "extract", "f", state="done")
    _job(factory, "extract", "g", state="dead")

    result = sweep(app, factory)

    assert result.sent == 3
    assert _sent(app) == {"synth": [queued], "render": sorted([failed_due, catalog]), "ingest": []}


def test_stuck_running_job_with_expired_lease_comes_back(app, factory):
    stuck = _job(factory, "extract", "s", state="running", attempts=1, lease_until=utcnow() - timedelta(seconds=5))
    result = sweep(app, factory)
    assert (result.sent, result.stuck) == (1, 1)
    assert _sent(app)["synth"] == [stuck]


def test_fresh_queued_jobs_are_left_to_the_dispatch_that_created_them(app, factory):
    fresh = _job(factory, "extract", "fresh", age=timedelta(seconds=0))
    result = sweep(app, factory, grace_s=10)
    assert (result.sent, result.held) == (0, 1)
    assert sweep(app, factory, grace_s=0).sent == 1
    assert _sent(app)["synth"] == [fresh]


def test_a_busy_queue_is_not_flooded_but_stuck_jobs_still_go(app, factory):
    waiting = [_job(factory, "extract", f"w{i}") for i in range(3)]
    assert sweep(app, factory).sent == 3
    # Nothing consumed the messages: the next ticks must not send the same jobs again.
    assert sweep(app, factory).sent == 0
    assert sweep(app, factory).held == 3
    stuck = _job(factory, "extract", "stuck", state="running", lease_until=utcnow() - timedelta(seconds=1))
    assert sweep(app, factory).sent == 1
    assert queue_backlog(app)["synth"] == 4
    assert _sent(app)["synth"] == sorted([*waiting, stuck])
    # Once the queue drained (the messages were lost, say), the due jobs are sent again.
    assert sweep(app, factory).sent == 4


def test_exhausted_job_swept_again_becomes_dead_when_claimed(app, factory):
    job_id = _job(factory, "extract", "x", state="running", attempts=5, lease_until=utcnow() - timedelta(seconds=1))
    assert sweep(app, factory).sent == 1
    [(_, [sent_id])] = drain(app)["synth"]
    with unit_of_work(factory) as s:
        assert claim_job(s, sent_id, "w", lease_s=60) is None
    with factory() as s:
        assert s.get(Job, job_id).state == "dead"
    assert sweep(app, factory).sent == 0


def test_dispatch_sends_each_job_on_its_queue_and_skips_unknown_ids(app, factory):
    with unit_of_work(factory) as s:
        ids = [enqueue_job(s, kind, f"k{i}", {}).id for i, kind in enumerate(("extract", "render", "retract"))]
    assert dispatch_jobs(app, factory, [*ids, 999]) == 3
    assert _sent(app) == {"synth": [ids[0]], "render": sorted(ids[1:]), "ingest": []}


def test_dispatch_skips_finished_jobs_but_sends_running_and_failed_ones(app, factory):
    done = _job(factory, "render", "done", state="done")
    dead = _job(factory, "render", "dead", state="dead")
    running = _job(factory, "render", "running", state="running", lease_until=utcnow() + timedelta(minutes=1))
    failed = _job(factory, "render", "failed", state="failed")
    assert dispatch_jobs(app, factory, [done, dead, running, failed]) == 2
    assert _sent(app)["render"] == sorted([running, failed])


def test_a_job_not_due_yet_is_sent_to_arrive_when_it_is_due(app, factory):
    with unit_of_work(factory) as s:
        later = enqueue_job(s, "catalog", "catalog", {}, delay_s=30.0).id
        now = enqueue_job(s, "render", "render:1", {}).id
        due = s.get(Job, later).next_attempt_at
    assert dispatch_jobs(app, factory, [later, now]) == 2
    etas = {}
    with app.connection_for_read() as conn:
        while (message := conn.default_channel.basic_get("render", no_ack=True)) is not None:
            etas[json.loads(message.body)[0][0]] = message.headers.get("eta")
    assert etas[now] is None
    eta = datetime.fromisoformat(etas[later])
    assert abs((eta - due.replace(tzinfo=eta.tzinfo)).total_seconds()) < 2


def test_dispatch_survives_a_broker_that_is_down(factory):
    down = make_celery(
        f"redis://127.0.0.1:{free_port()}/0",
        visibility_timeout_s=3600, soft_time_limit_s=10, time_limit_s=20, max_tasks_per_child=1,
    )
    down.conf.broker_connection_timeout = 1
    with unit_of_work(factory) as s:
        job_id = enqueue_job(s, "extract", "k", {}).id
    assert dispatch_jobs(down, factory, [job_id]) == 0  # logged, not raised: the sweep sends it later
    with factory() as s:
        assert s.get(Job, job_id).state == "queued"


def test_leases_of_dead_local_processes_are_released(app, factory):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = socket.gethostname()
    future = utcnow() + timedelta(hours=1)
    orphan = _job(factory, "extract", "o", state="running", worker=f"{host}:{dead_pid}", lease_until=future)
    alive = _job(factory, "extract", "a", state="running", worker=f"{host}:{os.getpid()}", lease_until=future)
    remote = _job(factory, "extract", "r", state="running", worker=f"elsewhere:{dead_pid}", lease_until=future)

    assert sweep(app, factory).sent == 0  # leases still valid
    with unit_of_work(factory) as s:
        assert release_dead_leases(s) == 1
    result = sweep(app, factory)
    assert (result.sent, result.stuck) == (1, 1)
    assert _sent(app)["synth"] == [orphan]
    with factory() as s:
        assert s.get(Job, alive).state == "running"
        assert s.get(Job, remote).lease_until is not None
