"""The jobs table: the truth about work.

Queue messages are hints; a job exists first as a row, and a worker may run it only after claiming it
here (a lease). A lost message, a restart or a killed worker therefore loses nothing: the sweep finds
due jobs (``queued`` or ``failed`` whose ``next_attempt_at`` has come) and stuck jobs (``running`` with
an expired lease) and sends them again. Every claim counts as an attempt, so crash redelivery uses up
the same budget as errors, and a job that exhausts it becomes ``dead`` (visible, never silently gone).

States: ``queued -> running -> done``; ``running -> failed -> running ...``; ``failed|running -> dead``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from store.models import Job, utcnow


def enqueue_job(
    session: Session,
    kind: str,
    key: str,
    payload: dict[str, Any],
    *,
    source_id: str | None = None,
    entity_id: int | None = None,
    max_attempts: int = 5,
    delay_s: float = 0.0,
    requeue_finished: bool = False,
) -> Job:
    """Create the job named ``key`` unless it exists (idempotent by key); the caller commits.

    Args:
        requeue_finished: when the job exists and is ``done`` or ``dead``, put it back to ``queued``
            with a fresh attempt count (used for work that legitimately recurs, such as renders).

    Returns:
        The new or existing job (flushed, so ``job.id`` is set).
    """
    job = session.scalar(select(Job).where(Job.key == key))
    now = utcnow()
    due = now + timedelta(seconds=delay_s)
    if job is None:
        job = Job(
            kind=kind,
            key=key,
            payload=payload,
            state="queued",
            attempts=0,
            max_attempts=max_attempts,
            next_attempt_at=due,
            source_id=source_id,
            entity_id=entity_id,
        )
        session.add(job)
        session.flush()
        return job
    if job.state == "running" and requeue_finished:
        # Work arrived while the job runs: it goes again when this run completes (``complete_job``).
        job.payload = {**payload, "rerun": True}
        session.flush()
    elif job.state in ("done", "dead") and requeue_finished:
        job.state = "queued"
        job.attempts = 0
        job.payload = payload
        job.next_attempt_at = due
        job.last_error = None
        job.lease_until = None
        session.flush()
    elif job.state in ("queued", "failed") and _aware(job.next_attempt_at) > due:
        job.next_attempt_at = due
        session.flush()
    return job


def _aware(dt: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are stored in UTC."""
    from datetime import UTC

    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def claim_job(session: Session, job_id: int, worker: str, lease_s: float) -> Job | None:
    """Take the job if it is runnable now: due ``queued``/``failed``, or ``running`` past its lease.

    Returns None when another worker holds it, it is finished, or it is not due yet. A claim is an
    attempt; a job claimed past ``max_attempts`` becomes ``dead`` instead and None is returned.
    """
    now = utcnow()
    runnable = or_(
        and_(Job.state.in_(("queued", "failed")), Job.next_attempt_at <= now),
        and_(Job.state == "running", Job.lease_until < now),
    )
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, runnable)
        .values(
            state="running",
            attempts=Job.attempts + 1,
            lease_until=now + timedelta(seconds=lease_s),
            worker=worker,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return None
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    if job.attempts > job.max_attempts:
        job.state = "dead"
        job.lease_until = None
        job.last_error = (job.last_error or "") + f"\ngave up after {job.max_attempts} attempts"
        session.flush()
        return None
    return job


def complete_job(session: Session, job: Job) -> bool:
    """Mark the job done; returns True when it was asked to run again meanwhile and is queued instead."""
    job.lease_until = None
    job.last_error = None
    if job.payload.get("rerun"):
        job.payload = {k: v for k, v in job.payload.items() if k != "rerun"}
        job.state = "queued"
        job.attempts = 0
        job.next_attempt_at = utcnow()
        session.flush()
        return True
    job.state = "done"
    session.flush()
    return False


def fail_job(session: Session, job: Job, error: str, *, retry_in_s: float, permanent: bool = False) -> None:
    """Record a failed attempt; schedule the next one, or make the job ``dead``."""
    job.last_error = error[:4000]
    job.lease_until = None
    if permanent or job.attempts >= job.max_attempts:
        job.state = "dead"
    else:
        job.state = "failed"
        job.next_attempt_at = utcnow() + timedelta(seconds=retry_in_s)
    session.flush()


def defer_job(session: Session, job: Job, *, wait_s: float, reason: str) -> None:
    """Put a claimed job back without spending its attempt (e.g. the model's breaker is open)."""
    job.state = "queued"
    job.attempts = max(0, job.attempts - 1)
    job.lease_until = None
    job.last_error = reason[:4000]
    job.next_attempt_at = utcnow() + timedelta(seconds=wait_s)
    session.flush()


def due_jobs(session: Session, *, limit: int = 500, kinds: Sequence[str] | None = None) -> list[Job]:
    """Jobs a sweep should (re)send: due queued/failed ones and running ones whose lease expired."""
    now = utcnow()
    q = select(Job).where(
        or_(
            and_(Job.state.in_(("queued", "failed")), Job.next_attempt_at <= now),
            and_(Job.state == "running", Job.lease_until < now),
        )
    )
    if kinds:
        q = q.where(Job.kind.in_(kinds))
    return list(session.scalars(q.order_by(Job.next_attempt_at, Job.id).limit(limit)))


def job_counts(session: Session) -> dict[str, int]:
    """Number of jobs per state (for /metrics and progress displays)."""
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    return {state: int(n) for state, n in rows}
