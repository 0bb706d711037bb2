"""``GET /query``: a question answered from page sections, claims and raw sources ranked together, cited."""

from __future__ import annotations

from typing import Literal

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
                tier=h.tier,
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
    mode: Literal["default", "wiki"] = Query(
        "default", description="`default`: sections, claims and raw chunks ranked together; `wiki`: the wiki's "
        "own evidence only (entity pages, sections, claims)."
    ),
    ctx: AppContext = Depends(app_context),
) -> QueryOut:
    """Page sections, claims and raw source chunks ranked together by how well they match the question (a
    named entity's own sections rank a little higher); a claim already shown by a chunk or a section is not
    repeated. ``tier`` asks one kind alone. No model is called. Every hit carries its citations."""
    answer = await run_in_threadpool(lambda: ctx.reads.query(q, k, tier, mode=mode))
    return answer_out(answer)
