"""``GET /query``: a question answered in tiers (entity page, page index, raw sources), with citations."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from api.context import AppContext, app_context, reader
from api.routes.pages import ERRORS
from api.schemas import CitationOut, HitOut, QueryOut
from search.tiers import Answer

router = APIRouter(tags=["query"], dependencies=[Depends(reader)], responses=ERRORS)


def answer_out(answer: Answer) -> QueryOut:
    """The API form of an :class:`search.tiers.Answer`."""
    return QueryOut(
        query=answer.query,
        tier=answer.tier,
        answered_by=answer.answered_by,  # type: ignore[arg-type]
        entity=answer.entity,
        hits=[
            HitOut(
                kind=h.kind,  # type: ignore[arg-type]
                ref=h.ref,
                title=h.title,
                text=h.text,
                score=h.score,
                page=h.page,
                citations=[CitationOut.model_validate(c) for c in h.citations],
            )
            for h in answer.hits
        ],
    )


@router.get("/query", response_model=QueryOut, summary="Answer a question from the wiki")
async def query(
    q: str = Query(..., min_length=1, max_length=1000, description="The question, in plain words."),
    k: int = Query(5, ge=1, le=50, description="Most hits to return."),
    tier: int | None = Query(
        None, ge=1, le=3, description="Ask only this tier: 1 entity page, 2 page sections and claims, 3 raw sources."
    ),
    ctx: AppContext = Depends(app_context),
) -> QueryOut:
    """Answer from the page of an entity the question names (tier 1), else from page sections and claims
    (tier 2), else from raw source chunks (tier 3). No model is called. Every hit carries its citations."""
    answer = await run_in_threadpool(ctx.reads.query, q, k, tier)
    return answer_out(answer)
