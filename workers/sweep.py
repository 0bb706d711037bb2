"""Dispatch and the sweep: the jobs table is the truth, queue messages are hints.

:func:`dispatch_jobs` sends ``jobs.run`` for job ids that were just committed, each on its kind's queue.
A send that fails (broker down) is logged and dropped: the job is in the table and the sweep finds it.
A job that is not due yet (the debounced catalog, a retry after backoff, a job waiting for the model)
is sent with a countdown to its ``next_attempt_at``: the broker (or the worker holding the message)
delivers it when it is due, so delayed work runs without a beat process. Without the countdown a worker
would take the message at once, find the job not due, skip it, and nothing would send it again.

:func:`sweep` is what beat runs every few seconds (and ``lore up`` once at start-up). It reads
``store.jobs.due_jobs`` and sends each one again:

- a ``running`` job whose lease expired (its worker died or was killed) is always re-sent;
- a due ``queued``/``failed`` job is re-sent only when its queue holds no waiting messages, and a
  ``queued`` one only when it has not changed in the last ``grace_s`` seconds (a job created a moment
  ago was dispatched by its creator). A busy queue still carries a message for its due jobs, or
  will once it drains; sending again on every tick would multiply messages during a long backlog. A
  lost message is therefore recovered at the latest when its queue drains, one tick after that.

A job that has used up its attempts becomes ``dead`` inside ``store.jobs.claim_job`` when the re-sent
message is picked up, so it is visible, never silently dropped.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from store.db import unit_of_work
from store.jobs import due_jobs
from store.models import Job, utcnow
from workers.celery_app import QUEUES, queue_for_kind

log = logging.getLogger(__name__)

Dispatch = Callable[[list[int]], None]
FINISHED = ("done", "dead")


def send_job(app: Celery, job_id: int, kind: str, *, countdown: float | None = None) -> None:
    """Send one ``jobs.run`` message for ``job_id`` on the queue of ``kind``.

    Args:
        countdown: deliver the message this many seconds from now (a job not due yet); None: at once.
    """
    if countdown is not None and countdown > 0:
        app.send_task("jobs.run", args=[int(job_id)], queue=queue_for_kind(kind), countdown=countdown)
    else:
        app.send_task("jobs.run", args=[int(job_id)], queue=queue_for_kind(kind))


def _countdown(state: str, next_attempt_at: datetime | None, now: datetime) -> float | None:
    """Seconds until a queued or failed job is due (None when it is due now or is running)."""
    due = _aware(next_attempt_at)
    if state not in ("queued", "failed") or due is None or due <= now:
        return None
    return (due - now).total_seconds()


def dispatch_jobs(app: Celery, session_factory: sessionmaker[Session], job_ids: Iterable[int]) -> int:
    """Send ``jobs.run`` for each committed job, on its kind's queue; returns how many were sent.

    Jobs already ``done`` or ``dead`` are not sent (a message for them could only be skipped); a job
    not due yet is sent with a countdown to its due time. Never raises for a broker failure: the jobs
    stay in the table and the sweep sends them later.
    """
    ids = sorted({int(i) for i in job_ids})
    if not ids:
        return 0
    with session_factory() as session:
        rows = session.execute(
            select(Job.id, Job.kind, Job.state, Job.next_attempt_at).where(Job.id.in_(ids))
        ).all()
    jobs = {int(i): (str(kind), str(state), due) for i, kind, state, due in rows}
    now = utcnow()
    sent = 0
    for job_id in ids:
        if job_id not in jobs:
            log.warning("dispatch: job %s does not exist (not committed?); not sent", job_id)
            continue
        kind, state, due = jobs[job_id]
        if state in FINISHED:
            continue  # nothing to run; whoever puts it back in the queue dispatches it again
        try:
            send_job(app, job_id, kind, countdown=_countdown(state, due, now))
            sent += 1
        except Exception as exc:  # the broker is down or refused; the sweep re-sends from the table
            log.warning("dispatch: could not send job %s (%s); the sweep will send it", job_id, exc)
    return sent


def make_dispatch(app: Celery, session_factory: sessionmaker[Session]) -> Dispatch:
    """A ``dispatch(job_ids)`` callable bound to ``app`` and ``session_factory``."""

    def dispatch(job_ids: list[int]) -> None:
        dispatch_jobs(app, session_factory, job_ids)

    return dispatch


def queue_backlog(app: Celery) -> dict[str, int | None]:
    """Messages waiting (not yet delivered) in each of Lore's queues; None where the broker can't say."""
    backlog: dict[str, int | None] = dict.fromkeys(QUEUES)
    try:
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            for queue in app.conf.task_queues or ():
                if queue.name in backlog:
                    ok = queue.bind(channel).queue_declare()
                    backlog[queue.name] = int(ok.message_count) if ok is not None else None
    except Exception as exc:
        log.warning("sweep: cannot read queue sizes (%s); sending every due job", exc)
    return backlog


def worker_id(pid: int | None = None) -> str:
    """The id this process writes into ``jobs.worker`` when it claims a job: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead_leases(session: Session, hostname: str | None = None) -> int:
    """Expire the lease of ``running`` jobs claimed by a process of this host that no longer exists.

    Used by ``lore up`` at start-up: a job whose worker was killed (or cold-stopped by Ctrl-C) is due
    again at once instead of after its full lease. Jobs of other hosts are left to their leases.
    The caller commits.

    Returns:
        How many leases were released.
    """
    host = hostname or socket.gethostname()
    released = 0
    rows = session.execute(
        select(Job.id, Job.worker).where(Job.state == "running", Job.worker.like(f"{host}:%"))
    ).all()
    now = utcnow()
    for job_id, worker in rows:
        pid_text = str(worker).rsplit(":", 1)[-1]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "running", Job.worker == worker)
            .values(lease_until=now - timedelta(seconds=1))
            .execution_options(synchronize_session=False)
        )
        released += 1
    session.flush()
    return released


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did."""

    due: int
    sent: int
    stuck: int
    held: int  # due jobs not re-sent because their queue still holds messages or they are fresh


def _aware(dt: datetime | None) -> datetime | None:
    from datetime import UTC

    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def sweep(
    app: Celery,
    session_factory: sessionmaker[Session],
    *,
    limit: int = 500,
    grace_s: float = 10.0,
    release_dead: bool = False,
) -> SweepResult:
    """Re-send due and stuck jobs to their queues (see the module docstring for the rules).

    Args:
        app: the Celery app whose broker receives the messages.
        session_factory: opens the ledger session that reads the jobs table.
        limit: at most this many jobs per sweep.
        grace_s: a queued job changed more recently than this is not re-sent (its creator dispatched it).
        release_dead: first expire leases held by dead processes of this host (``lore up`` start-up).

    Returns:
        Counts of what was found and sent.
    """
    if release_dead:
        with unit_of_work(session_factory) as session:
            released = release_dead_leases(session)
        if released:
            log.info("sweep: released %d job(s) held by processes that no longer run", released)
    with session_factory() as session:
        jobs = [(j.id, j.kind, j.state, _aware(j.updated_at)) for j in due_jobs(session, limit=limit)]
    if not jobs:
        return SweepResult(0, 0, 0, 0)
    backlog = queue_backlog(app)
    fresh_after = utcnow() - timedelta(seconds=grace_s)
    sent = stuck = held = 0
    for job_id, kind, state, updated_at in jobs:
        if state == "running":
            stuck += 1
        else:
            waiting = backlog.get(queue_for_kind(kind))
            fresh = state == "queued" and updated_at is not None and updated_at > fresh_after
            if fresh or (waiting is not None and waiting > 0):
                held += 1
                continue
        try:
            send_job(app, job_id, kind)
            sent += 1
        except Exception as exc:
            log.warning("sweep: could not send job %s (%s); next sweep tries again", job_id, exc)
            break
    if sent:
        log.info("sweep: sent %d job(s) (%d stuck), held %d", sent, stuck, held)
    return SweepResult(len(jobs), sent, stuck, held)
