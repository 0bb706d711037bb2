"""The write use-cases every front end shares (REST routes, MCP tools, the web UI's forms): retract a
source, resolve a dispute. Each runs in one transaction, then dispatches its jobs (enqueue after
commit). Submitting a document is :func:`api.intake.submit_document`."""

from __future__ import annotations

from api.deps import ApiDeps
from api.schemas import ContradictionOut, ResolveIn, ResolveOut, RetractOut
from store.queries import list_contradictions
from synth.disputes import resolve_dispute
from synth.lifecycle import request_retraction


def retract(deps: ApiDeps, source_id: str) -> RetractOut:
    """Ask for a source's retraction (a job; idempotent) and dispatch it.

    Raises:
        SourceNotFound: no source with this id.
    """
    with deps.session_factory() as session, session.begin():
        job = request_retraction(session, source_id)
        out = RetractOut(source_id=source_id, job_id=job.id, status=job.state)
    deps.dispatch([out.job_id])
    return out


def resolve(deps: ApiDeps, dispute_id: int, body: ResolveIn, reviewer: str) -> ResolveOut:
    """Record a reviewer's decision in one transaction, then dispatch the entity's render.

    Raises:
        DisputeNotFound, DisputeClosed, InvalidDecision: see :func:`synth.disputes.resolve_dispute`.
    """
    with deps.session_factory() as session, session.begin():
        done = resolve_dispute(session, dispute_id, body.decision, reviewer=reviewer, claim=body.claim, note=body.note)
    deps.dispatch(list(done.job_ids))
    with deps.session_factory() as session:
        view = list_contradictions(session, status=None, dispute_ids=[dispute_id], limit=1)[0]
    return ResolveOut(dispute=ContradictionOut.model_validate(view), changed=done.changed, job_ids=list(done.job_ids))
