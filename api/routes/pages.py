"""Pages: list, read (markdown, sanitized HTML or JSON with claims and citations), history and diff."""

from __future__ import annotations

import re
from html import escape
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session

from api.context import AppContext, app_context, read_session, reader
from api.errors import BadRequest, NotFound
from api.schemas import (
    CitationOut,
    ClaimOut,
    CommitOut,
    DiffOut,
    ErrorOut,
    HistoryOut,
    PageListOut,
    PageOut,
    PageSummaryOut,
)
from api.wiki_view import PageText, WikiView, page_type
from store.errors import StoreError
from store.git_plumbing import CommitInfo
from store.queries import citations, page_claims
from wiki.markdown import extract_footnote_refs, to_html

router = APIRouter(tags=["pages"], dependencies=[Depends(reader)])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "Reads are closed and no valid API key was sent."},
    403: {"model": ErrorOut, "description": "The key lacks the read scope."},
}
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"model": ErrorOut, "description": "No such page or revision."}}
_REV = r"^([0-9a-fA-F]{4,64}|HEAD)$"
#: Largest paging offset accepted (a database integer must hold it).
MAX_OFFSET = 10_000_000
Format = Literal["md", "html", "json"]


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


def page_href(path: str) -> str:
    """API link to a page (used by HTML rendered through the API)."""
    return "/pages/" + quote(path)


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


def page_json(session: Session, page: PageText) -> PageOut:
    """A page as JSON with the ledger's claims and its footnotes' citations."""
    refs = extract_footnote_refs(page.body)
    cites = citations(session, refs)
    claims = page_claims(session, page.path)
    return PageOut(
        path=page.path,
        title=page.title,
        type=page.type,
        version=page.version,
        commit=page.commit,
        front_matter={str(k): v for k, v in page.meta.items()},
        markdown=page.body,
        claims=[ClaimOut.model_validate(c) for c in claims],
        citations={k: CitationOut.model_validate(v) for k, v in cites.items()},
    )


def page_html(wiki: WikiView, page: PageText) -> str:
    """A page as a small standalone HTML document (sanitized body, no script)."""
    body = to_html(page.body, wiki.resolver(page_href))
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(page.title)}</title></head><body><article>{body}</article></body></html>\n"
    )


@router.get("/pages", response_model=PageListOut, responses=ERRORS, summary="List pages")
def list_pages(
    type: str | None = Query(None, description="Only pages of this type: an entity type, 'sources' or 'catalog'."),
    q: str | None = Query(None, max_length=200, description="Only pages whose title or path contains this text."),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ctx: AppContext = Depends(app_context),
) -> PageListOut:
    """Pages at HEAD, sorted by path."""
    commit, paths, titles = ctx.wiki.pages()
    rows = [PageSummaryOut(path=p, title=titles.get(p, p), type=page_type(p)) for p in paths]
    if type:
        rows = [r for r in rows if r.type == type]
    if q:
        needle = q.casefold()
        rows = [r for r in rows if needle in r.title.casefold() or needle in r.path.casefold()]
    return PageListOut(pages=rows[offset : offset + limit], total=len(rows), commit=commit)


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
    check_page_path(path)
    commits = ctx.deps.store.history(path, limit=limit)
    if not commits:
        raise NotFound(f"no history for {path!r}")
    return HistoryOut(path=path, commits=[commit_out(c) for c in commits])


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
    check_page_path(path)
    if a is None or b is None:
        commits = ctx.deps.store.history(path, limit=2)
        if not commits:
            raise NotFound(f"no history for {path!r}")
        b = b or commits[0].id
        a = a or (commits[1].id if len(commits) > 1 else (commits[0].parents[0] if commits[0].parents else b))
    try:
        a_id, b_id = (resolve_rev(ctx, r) for r in (a, b))
        text = ctx.deps.store.diff(path, a_id, b_id)
    except StoreError as exc:
        raise NotFound(f"unknown revision: {exc}") from None
    return DiffOut(path=path, a=a_id, b=b_id, diff=text)


@router.get(
    "/pages/{path:path}",
    response_model=PageOut,
    responses={
        **ERRORS,
        **NOT_FOUND,
        200: {
            "description": "The page: JSON (default), markdown or sanitized HTML.",
            "content": {"text/markdown": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}},
        },
    },
    summary="Read a page",
)
def get_page(
    path: str,
    request: Request,
    response: Response,
    format: Format | None = Query(None, description="md, html or json; default from the Accept header, else json."),
    ctx: AppContext = Depends(app_context),
    session: Session = Depends(read_session),
) -> Response | PageOut:
    """Read a page at HEAD as markdown (the file), sanitized HTML, or JSON with claims and citations."""
    page = ctx.wiki.read(path)
    chosen = negotiate(format, request.headers.get("accept"))
    headers = {"ETag": f'"{page.version}"', "Vary": "Accept"}
    if chosen == "md":
        return PlainTextResponse(page.text, media_type="text/markdown; charset=utf-8", headers=headers)
    if chosen == "html":
        return HTMLResponse(page_html(ctx.wiki, page), headers=headers)
    response.headers.update(headers)
    return page_json(session, page)


def check_page_path(path: str) -> None:
    """Refuse anything that is not a ``wiki/....md`` path (as NotFound: no such page can exist)."""
    if not path.startswith("wiki/") or not path.endswith(".md") or ".." in path.split("/"):
        raise NotFound(f"no page {path!r}: pages are wiki/....md paths")


def resolve_rev(ctx: AppContext, rev: str) -> str:
    """A commit id (or ``HEAD``) from a query parameter, validated before it reaches git."""
    if rev == "HEAD":
        head = ctx.deps.store.head()
        if head is None:
            raise NotFound("the wiki has no commits")
        return head
    if not re.fullmatch(r"[0-9a-fA-F]{4,64}", rev):
        raise BadRequest(f"not a commit id: {rev!r}")
    return rev.lower()
