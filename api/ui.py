"""The web UI: server-rendered Jinja2 pages, no script (the Content-Security-Policy forbids any).

``/ui`` is the catalog with a search box; ``/ui/pages/<path>`` shows a page with working wikilinks, its
footnotes, a citations panel (each claim's quote and a link to its source), the open disputes about
its entity, and links to its history; ``/ui/search``, ``/ui/sources``, ``/ui/sources/<id>`` and
``/ui/contradictions`` show the rest. Page markdown is rendered by ``wiki.markdown.to_html``
(``js-default`` + nh3); everything else goes through Jinja2's autoescaping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.context import AppContext, app_context, read_session, reader
from api.errors import NotFound
from api.routes.pages import MAX_OFFSET, check_page_path, resolve_rev
from api.wiki_view import page_type
from store.errors import StoreError
from store.queries import citations, entity_for_page, list_contradictions, list_sources, page_disputes, source_detail
from wiki.markdown import extract_footnote_refs, to_html

TEMPLATES = Path(__file__).parent / "templates"
router = APIRouter(prefix="/ui", include_in_schema=False, dependencies=[Depends(reader)])


def ui_href(path: str) -> str:
    """UI link to a page."""
    return "/ui/pages/" + quote(path)


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["page_href"] = ui_href
    env.filters["urlq"] = lambda s: quote(str(s), safe="")
    env.filters["pathq"] = lambda s: quote(str(s))
    env.filters["short"] = lambda s, n=12: str(s)[:n]
    return env


ENV = _env()


def render(name: str, **values: Any) -> HTMLResponse:
    """Render a template to an HTML response."""
    return HTMLResponse(ENV.get_template(name).render(**values))


@router.get("", response_class=HTMLResponse)
def catalog(ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    commit, paths, titles = ctx.wiki.pages()
    groups: dict[str, list[tuple[str, str]]] = {}
    for path in paths:
        groups.setdefault(page_type(path), []).append((titles.get(path, path), path))
    ordered = sorted(groups.items(), key=lambda kv: (kv[0] in ("catalog", "sources"), kv[0]))
    return render(
        "catalog.html",
        title="Lore",
        groups=[(kind, sorted(items, key=lambda t: t[0].casefold())) for kind, items in ordered],
        commit=commit,
        total=len(paths),
    )


@router.get("/pages/{path:path}", response_class=HTMLResponse)
def page(path: str, ctx: AppContext = Depends(app_context), session: Session = Depends(read_session)) -> HTMLResponse:
    text = ctx.wiki.read(path)
    body_html = to_html(text.body, ctx.wiki.resolver(ui_href))
    refs = extract_footnote_refs(text.body)
    cites = citations(session, refs)
    entity = entity_for_page(session, path)
    disputes = []
    if entity is not None:
        ids = page_disputes(session, entity.id)
        pair_cites = citations(session, [c for pair in ids for c in pair])
        disputes = [(pair_cites[a], pair_cites[b]) for a, b in ids if a in pair_cites and b in pair_cites]
    return render(
        "page.html",
        title=text.title,
        page=text,
        body_html=body_html,
        citations=[cites[r] for r in refs if r in cites],
        disputes=disputes,
    )


@router.get("/history/{path:path}", response_class=HTMLResponse)
def history(path: str, ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    check_page_path(path)
    commits = ctx.deps.store.history(path, limit=100)
    if not commits:
        raise NotFound(f"no history for {path!r}")
    return render("history.html", title=f"History of {path}", path=path, commits=commits)


@router.get("/diff/{path:path}", response_class=HTMLResponse)
def diff(
    path: str,
    a: str = Query(..., pattern=r"^[0-9a-fA-F]{4,64}$"),
    b: str = Query(..., pattern=r"^[0-9a-fA-F]{4,64}$"),
    ctx: AppContext = Depends(app_context),
) -> HTMLResponse:
    check_page_path(path)
    try:
        text = ctx.deps.store.diff(path, resolve_rev(ctx, a), resolve_rev(ctx, b))
    except StoreError as exc:
        raise NotFound(f"unknown revision: {exc}") from None
    lines = [(line[:1] if line[:1] in "+-@" else " ", line) for line in text.splitlines()]
    return render("diff.html", title=f"Diff of {path}", path=path, a=a, b=b, lines=lines)


@router.get("/search", response_class=HTMLResponse)
async def search(
    q: str = Query("", max_length=1000),
    k: int = Query(8, ge=1, le=50),
    ctx: AppContext = Depends(app_context),
) -> HTMLResponse:
    answer = await run_in_threadpool(ctx.engine.answer, q, k) if q.strip() else None
    return render("search.html", title=f"Search: {q}" if q else "Search", q=q, answer=answer)


@router.get("/sources", response_class=HTMLResponse)
def sources(
    status: str | None = Query(None, max_length=20),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    session: Session = Depends(read_session),
) -> HTMLResponse:
    rows, total = list_sources(session, status=status or None, limit=200, offset=offset)
    return render("sources.html", title="Sources", sources=rows, total=total, status=status, offset=offset)


@router.get("/sources/{source_id}", response_class=HTMLResponse)
def source(source_id: str, session: Session = Depends(read_session)) -> HTMLResponse:
    detail = source_detail(session, source_id.lower())
    if detail is None:
        raise NotFound(f"no source {source_id!r}")
    return render("source.html", title=detail.source.title, d=detail)


@router.get("/contradictions", response_class=HTMLResponse)
def contradictions(session: Session = Depends(read_session)) -> HTMLResponse:
    rows = list_contradictions(session, status="open", limit=500)
    return render("contradictions.html", title="Conflicting sources", rows=rows)
