"""``POST /contradictions/{id}/resolve``: a reviewer's decision on a dispute (``curate`` scope)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from starlette.concurrency import run_in_threadpool

from api.auth import Principal
from api.context import AppContext, app_context, curator
from api.schemas import ErrorOut, ResolveIn, ResolveOut
from api.writes import resolve

router = APIRouter(tags=["contradictions"])


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
    return await run_in_threadpool(resolve, ctx.deps, dispute_id, body, reviewer)
