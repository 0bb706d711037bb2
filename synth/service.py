"""Running jobs: the one entry point workers call (``run_job``).

``run_job`` claims the job in the jobs table, runs its flow, and records the outcome:

- success -> ``done``; follow-up jobs are dispatched after the commit that created them;
- the model is unavailable (every endpoint's breaker open) -> the job waits in the database
  (``next_attempt_at``) without spending an attempt;
- a permanent failure (context overflow, no grounded claims, a source that cannot be read) -> the
  source is ``failed`` with a reason a person understands, and the job is ``dead``;
- anything else -> ``failed`` with backoff; after ``max_attempts`` the job is ``dead`` and visible.

A job put back to wait (deferred or failed with backoff) is dispatched again at once; dispatch sends it
with a countdown to its due time, so it runs again with or without a beat process sweeping.

A crash between any two steps leaves the job ``running`` with a lease; the sweep sends it again once
the lease expires, and every flow is idempotent.
"""

from __future__ import annotations

import logging
import traceback

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from structlog.contextvars import bound_contextvars

from store.errors import StoreError
from store.faults import fault_scope
from store.jobs import claim_job, complete_job, defer_job, fail_job
from store.models import Job, Source
from synth.deps import SynthDeps
from synth.errors import ContextOverflow, ExtractionRejected, InvalidAnswer, ModelUnavailable, OutputTruncated
from synth.flows import flow_for
from synth.flows.render import request_catalog

log = logging.getLogger(__name__)

# the same request fails the same way every time (a malformed payload too)
PERMANENT = (ContextOverflow, ExtractionRejected, OutputTruncated, ValidationError)
BACKOFF_S = (5.0, 30.0, 120.0, 600.0)


def _explain(exc: BaseException) -> str:
    """A reason a person understands, for the source's error field."""
    if isinstance(exc, ContextOverflow):
        return f"the document is too long for the model's context: {exc}"
    if isinstance(exc, ExtractionRejected):
        return str(exc)
    if isinstance(exc, OutputTruncated):
        return f"the model's answer was cut off (output limit): {exc}"
    if isinstance(exc, InvalidAnswer):
        return f"the model's answer did not match the expected structure, even after a repair: {exc}"
    return f"{type(exc).__name__}: {exc}"


def run_job(deps: SynthDeps, job_id: int) -> str:
    """Claim and run one job. Returns done | retry | deferred | dead | skipped. Safe to call twice."""
    with deps.session_factory() as session, session.begin():
        job = claim_job(session, job_id, deps.worker_id, deps.lease_s)
        if job is None:
            return "skipped"
        session.expunge(job)
    source_id = job.source_id or (job.payload or {}).get("source_id")
    # Every log line of this job carries its ids (lore.logs); render and catalog jobs serve many
    # sources, so only jobs of one source carry a source_id.
    with bound_contextvars(job_id=job.id, job_kind=job.kind, source_id=source_id):
        log.info("job %s (%s) started, attempt %s", job.id, job.kind, job.attempts)
        outcome = _run_claimed(deps, job)
        log.info("job %s (%s) %s", job.id, job.kind, outcome)
        return outcome


def _run_claimed(deps: SynthDeps, job: Job) -> str:
    try:
        with fault_scope(job.kind):  # crash tests can aim a crash point at one kind of job
            follow_ups = flow_for(job.kind).run(deps, job)
    except ModelUnavailable as exc:
        with deps.session_factory() as session, session.begin():
            live = session.get(Job, job.id)
            if live is not None:
                defer_job(session, live, wait_s=max(exc.retry_after_s, 5.0), reason=str(exc))
        deps.dispatch([job.id])
        return "deferred"
    except Exception as exc:  # every failure is recorded; none escapes unrecorded
        permanent = isinstance(exc, PERMANENT)
        transient_infra = isinstance(exc, OperationalError | StoreError)
        reason = _explain(exc)
        log.warning("job %s (%s) failed: %s", job.id, job.kind, reason)
        with deps.session_factory() as session, session.begin():
            live = session.get(Job, job.id)
            if live is None:
                return "dead"
            delay = 1.0 if transient_infra else BACKOFF_S[min(live.attempts - 1, len(BACKOFF_S) - 1)]
            fail_job(session, live, reason + "\n" + traceback.format_exc(limit=3), retry_in_s=delay,
                     permanent=permanent)
            catalog_job = None
            if live.state == "dead" and live.source_id and live.kind == "extract":
                src = session.get(Source, live.source_id)
                if src is not None and src.status not in ("retracted", "replaced"):
                    src.status = "failed"
                    src.error = reason
                    catalog_job = request_catalog(session, deps)  # the log and index list it with its reason
            state = live.state
        again = [catalog_job] if catalog_job is not None else []
        if state == "failed":
            again.append(job.id)  # the retry, due after its backoff
        if again:
            deps.dispatch(again)
        return "dead" if state == "dead" else "retry"
    with deps.session_factory() as session, session.begin():
        live = session.get(Job, job.id)
        if live is not None and live.state == "running" and complete_job(session, live):
            follow_ups = [*follow_ups, live.id]
    if follow_ups:
        deps.dispatch(list(follow_ups))
    return "done"
