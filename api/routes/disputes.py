"""``POST /contradictions/{id}/resolve``: a reviewer's decision on a dispute (``curate`` scope)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from starlette.concurrency import run_in_threadpool

from api.auth import Principal
from api.context import AppContext, app_context, curator
from api.schemas import ContradictionOut, ErrorOut, ResolveIn, ResolveOut
from store.queries import list_contradictions
from synth.disputes import resolve_dispute

router = APIRouter(tags=["contradictions"])


def resolve(ctx: AppContext, dispute_id: int, body: ResolveIn, reviewer: str) -> ResolveOut:
    """Record the decision in one transaction, then dispatch the entity's render."""
    with ctx.deps.session_factory() as session, session.begin():
        done = resolve_dispute(session, dispute_id, body.decision, reviewer=reviewer, claim=body.claim,
                               note=body.note)
    ctx.deps.dispatch(list(done.job_ids))
    with ctx.deps.session_factory() as session:
        view = list_contradictions(session, status=None, dispute_ids=[dispute_id], limit=1)[0]
    return ResolveOut(dispute=ContradictionOut.model_validate(view), changed=done.changed, job_ids=list(done.job_ids))


@router.post(
    "/contradictions/{dispute_id}/resolve",
    response_model=ResolveOut,
    responses={
        400: {"model": ErrorOut, "description": "The body is not JSON."},
        401: {"model": ErrorOut, "description": "No valid API key."},
        403: {"model": ErrorOut, "description": "The key lacks the curate scope."},
        404: {"model": ErrorOut, "description": "No dispute with this id."},
        409: {"model": ErrorOut, "description": "The dispute is not open any more."},
        422: {"model": ErrorOut, "description": "An unknown decision, or `keep` without one of the two claims."},
    },
    summary="Resolve a dispute",
)
async def resolve_contradiction(
    body: ResolveIn,
    dispute_id: int = Path(..., ge=1, le=2**62, description="The dispute's id (from `GET /contradictions`)."),
    principal: Principal = Depends(curator),
    ctx: AppContext = Depends(app_context),
) -> ResolveOut:
    """Decide a dispute: `keep` one claim (the other moves to the page's History), `both_valid`, or
    `dismiss` a false flag. The decision, note and reviewer (this key's name) are kept in the ledger; the
    entity's page is re-rendered showing them, in a commit with a `Lore-Review` trailer."""
    reviewer = "anonymous" if principal.anonymous else principal.name
    return await run_in_threadpool(resolve, ctx, dispute_id, body, reviewer)
