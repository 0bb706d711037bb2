"""Running due jobs in this process, without a queue (tools, tests, benchmarks, `lore ingest --inline`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select

from store.jobs import due_jobs
from store.models import Job
from synth.deps import SynthDeps
from synth.service import run_job


def drain(
    deps: SynthDeps,
    *,
    max_jobs: int = 100_000,
    wait_for_delayed: bool = True,
    on_job: Callable[[int, str], None] | None = None,
) -> dict[str, int]:
    """Run due jobs until none is left; returns counts of outcomes.

    Args:
        wait_for_delayed: also wait for jobs scheduled in the near future (debounced catalog, backoff).
        on_job: called with (job id, outcome) after each job.
    """
    outcomes: dict[str, int] = {}
    ran = 0
    while ran < max_jobs:
        with deps.session_factory() as session:
            ids = [j.id for j in due_jobs(session, limit=50)]
            pending = session.scalar(
                select(Job.next_attempt_at).where(Job.state.in_(("queued", "failed"))).order_by(Job.next_attempt_at)
            )
        if not ids:
            if not wait_for_delayed or pending is None:
                break
            time.sleep(0.2)
            continue
        for job_id in ids:
            outcome = run_job(deps, job_id)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            ran += 1
            if on_job is not None:
                on_job(job_id, outcome)
    return outcomes
