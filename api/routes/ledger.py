"""Entities, sources, contradictions and recent changes: what the ledger and the log know."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query

from api.context import AppContext, app_context, reader
from api.routes.pages import ERRORS, MAX_OFFSET, commit_out
from api.schemas import (
    ChangesOut,
    ClaimOut,
    ContradictionListOut,
    ContradictionOut,
    EntityOut,
    ErrorOut,
    LinkOut,
    SourceDetailOut,
    SourceListOut,
    SourceOut,
)

router = APIRouter(dependencies=[Depends(reader)], responses=ERRORS)
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"model": ErrorOut, "description": "Not found."}}


@router.get(
    "/entities/{slug}",
    response_model=EntityOut,
    responses={**NOT_FOUND, 400: {"model": ErrorOut, "description": "Several entity types use this slug."}},
    tags=["entities"],
    summary="An entity with its aliases, links and claims",
)
def get_entity(
    slug: str,
    type: str | None = Query(None, description="Entity type, needed when several types use the slug."),
    ctx: AppContext = Depends(app_context),
) -> EntityOut:
    """An entity by slug: aliases, claim counts, links, and its active and disputed claims."""
    view, claims = ctx.reads.entity(slug, type)
    return EntityOut(
        id=view.id,
        name=view.name,
        type=view.type,
        slug=view.slug,
        description=view.description,
        page_path=view.page_path,
        aliases=list(view.aliases),
        claim_counts=view.claim_counts,
        links_out=[LinkOut(relation=r, name=n, page=p) for r, n, p in view.links_out],
        links_in=[LinkOut(relation=r, name=n, page=p) for r, n, p in view.links_in],
        claims=[ClaimOut.model_validate(c) for c in claims],
    )


@router.get("/sources", response_model=SourceListOut, tags=["sources"], summary="List sources")
def get_sources(
    status: str | None = Query(None, max_length=20, description="Only sources in this status (e.g. failed)."),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ctx: AppContext = Depends(app_context),
) -> SourceListOut:
    """Sources, newest first, with their status and error."""
    rows, total = ctx.reads.sources(status=status, limit=limit, offset=offset)
    return SourceListOut(sources=[SourceOut.model_validate(r) for r in rows], total=total)


@router.get(
    "/sources/{source_id}",
    response_model=SourceDetailOut,
    responses=NOT_FOUND,
    tags=["sources"],
    summary="A source's status, claims, pages touched and errors",
)
def get_source(source_id: str, ctx: AppContext = Depends(app_context)) -> SourceDetailOut:
    """One source by id (its sha256, or a unique prefix of at least 8 hex digits)."""
    return SourceDetailOut.model_validate(ctx.reads.source(source_id))


@router.get(
    "/contradictions", response_model=ContradictionListOut, tags=["contradictions"], summary="Disputes between sources"
)
def get_contradictions(
    status: Literal["open", "resolved", "all"] = Query("open"),
    entity: str | None = Query(None, max_length=300, description="Only this entity's (a name, alias or slug)."),
    decision: Literal["keep", "both_valid", "dismiss"] | None = Query(None, description="Only these decisions."),
    limit: int = Query(200, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ctx: AppContext = Depends(app_context),
) -> ContradictionListOut:
    """Pairs of claims about one entity that sources disagree on, with both quotes and, once a reviewer
    decided, the decision; ``total`` counts every match."""
    rows, total = ctx.reads.contradictions(None if status == "all" else status, limit=limit, offset=offset,
                                           entity=entity, decision=decision, with_total=True)
    return ContradictionListOut(contradictions=[ContradictionOut.model_validate(r) for r in rows], total=total)


@router.get("/changes", response_model=ChangesOut, tags=["changes"], summary="Recent commits")
def get_changes(
    limit: int = Query(50, ge=1, le=500),
    ctx: AppContext = Depends(app_context),
) -> ChangesOut:
    """Recent commits on the wiki branch, newest first, with their trailers and changed paths."""
    return ChangesOut(commits=[commit_out(c) for c in ctx.reads.changes(limit=limit)])
