"""Pages: list, read (markdown, sanitized HTML or JSON with claims and citations), history and diff."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.context import AppContext, app_context, reader
from api.reads import Format, check_page_path, etag_matches
from api.schemas import (
    CommitOut,
    DiffOut,
    ErrorOut,
    HistoryOut,
    PageListOut,
    PageOut,
)
from store.git_plumbing import CommitInfo

router = APIRouter(tags=["pages"], dependencies=[Depends(reader)])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "Reads are closed and no valid API key was sent."},
    403: {"model": ErrorOut, "description": "The key lacks the read scope."},
}
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"model": ErrorOut, "description": "No such page or revision."}}
_REV = r"^([0-9a-fA-F]{4,64}|HEAD)$"
__all__ = ["ERRORS", "MAX_OFFSET", "check_page_path", "commit_out", "negotiate", "router"]
#: Largest paging offset accepted (a database integer must hold it).
MAX_OFFSET = 10_000_000


def commit_out(c: CommitInfo) -> CommitOut:
    return CommitOut(
        id=c.id,
        parents=list(c.parents),
        author=c.author,
        timestamp=c.timestamp,
        message=c.message,
        trailers=c.trailers,
        paths=list(c.paths),
    )


def negotiate(fmt: str | None, accept: str | None) -> Format:
    """The format asked for by ``?format=`` or else by the ``Accept`` header (default JSON)."""
    if fmt in ("md", "html", "json"):
        return fmt  # type: ignore[return-value]
    accept = (accept or "").lower()
    if "text/markdown" in accept:
        return "md"
    if "text/html" in accept:
        return "html"
    return "json"


@router.get("/pages", response_model=PageListOut, responses=ERRORS, summary="List pages")
def list_pages(
    type: str | None = Query(None, description="Only pages of this type: an entity type, 'sources' or 'catalog'."),
    q: str | None = Query(None, max_length=200, description="Only pages whose title or path contains this text."),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ctx: AppContext = Depends(app_context),
) -> PageListOut:
    """Pages at HEAD, sorted by path."""
    return ctx.reads.list_pages(type=type, contains=q, limit=limit, offset=offset)


@router.get(
    "/pages/{path:path}/history",
    response_model=HistoryOut,
    responses={**ERRORS, **NOT_FOUND},
    summary="Commits that changed a page",
)
def page_history(
    path: str,
    limit: int = Query(50, ge=1, le=500),
    ctx: AppContext = Depends(app_context),
) -> HistoryOut:
    """Commits that changed the page, newest first, with their trailers (Lore-Source, Lore-Job)."""
    return HistoryOut(path=path, commits=[commit_out(c) for c in ctx.reads.history(path, limit=limit)])


@router.get(
    "/pages/{path:path}/diff",
    response_model=DiffOut,
    responses={**ERRORS, **NOT_FOUND, 400: {"model": ErrorOut, "description": "Bad revision."}},
    summary="Diff of a page between two commits",
)
def page_diff(
    path: str,
    a: str | None = Query(None, pattern=_REV, description="Older commit (default: the page's previous change)."),
    b: str | None = Query(None, pattern=_REV, description="Newer commit (default: the page's latest change)."),
    ctx: AppContext = Depends(app_context),
) -> DiffOut:
    """Unified diff of a page between two commits; defaults compare its last two changes."""
    a_id, b_id, text = ctx.reads.diff(path, a, b)
    return DiffOut(path=path, a=a_id, b=b_id, diff=text)


@router.get(
    "/pages/{path:path}",
    response_model=PageOut,
    responses={
        **ERRORS,
        **NOT_FOUND,
        304: {"description": "The `If-None-Match` header names the current ETag of this form of the page."},
        200: {
            "description": "The page: JSON (default), markdown or sanitized HTML.",
            "content": {"text/markdown": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}},
        },
    },
    summary="Read a page",
)
async def get_page(
    path: str,
    request: Request,
    format: Format | None = Query(None, description="md, html or json; default from the Accept header, else json."),
    at: str | None = Query(
        None, pattern=r"^[0-9a-fA-F]{4,64}$", description="Read the page at this commit instead of HEAD."
    ),
    ctx: AppContext = Depends(app_context),
) -> Response:
    """Read a page at HEAD (or at commit ``at``) as markdown (the file), sanitized HTML, or JSON with claims
    and citations. Each form has its own strong ETag; ``If-None-Match`` with it is answered 304. Reads at
    HEAD are ``Cache-Control: no-cache``; the markdown at a commit id is ``immutable``."""
    chosen = negotiate(format, request.headers.get("accept"))
    rendered = ctx.reads.cached(path, chosen) if at is None else None
    if rendered is None:
        rendered = await run_in_threadpool(ctx.reads.render, path, chosen, at)
    headers = {"ETag": rendered.etag, "Vary": "Accept", "Cache-Control": rendered.cache_control}
    if etag_matches(request.headers.get("if-none-match"), rendered.etag):
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)
