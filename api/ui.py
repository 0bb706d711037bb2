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
from starlette.concurrency import run_in_threadpool

from api.context import AppContext, app_context, reader
from api.reads import ui_href
from api.routes.pages import MAX_OFFSET

TEMPLATES = Path(__file__).parent / "templates"
router = APIRouter(prefix="/ui", include_in_schema=False, dependencies=[Depends(reader)])


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
    listing = ctx.reads.list_pages(limit=10_000_000)
    commit, total = listing.commit, listing.total
    groups: dict[str, list[tuple[str, str]]] = {}
    for row in listing.pages:
        groups.setdefault(row.type, []).append((row.title, row.path))
    ordered = sorted(groups.items(), key=lambda kv: (kv[0] in ("catalog", "sources"), kv[0]))
    return render(
        "catalog.html",
        title="Lore",
        groups=[(kind, sorted(items, key=lambda t: t[0].casefold())) for kind, items in ordered],
        commit=commit,
        total=total,
    )


@router.get("/pages/{path:path}", response_class=HTMLResponse)
def page(path: str, ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    view = ctx.reads.ui_page(path)
    return render(
        "page.html",
        title=view.page.title,
        page=view.page,
        body_html=view.body_html,
        citations=list(view.citations),
        disputes=list(view.disputes),
    )


@router.get("/history/{path:path}", response_class=HTMLResponse)
def history(path: str, ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    commits = ctx.reads.history(path, limit=100)
    return render("history.html", title=f"History of {path}", path=path, commits=commits)


@router.get("/diff/{path:path}", response_class=HTMLResponse)
def diff(
    path: str,
    a: str = Query(..., pattern=r"^[0-9a-fA-F]{4,64}$"),
    b: str = Query(..., pattern=r"^[0-9a-fA-F]{4,64}$"),
    ctx: AppContext = Depends(app_context),
) -> HTMLResponse:
    _, _, text = ctx.reads.diff(path, a, b)
    lines = [(line[:1] if line[:1] in "+-@" else " ", line) for line in text.splitlines()]
    return render("diff.html", title=f"Diff of {path}", path=path, a=a, b=b, lines=lines)


@router.get("/search", response_class=HTMLResponse)
async def search(
    q: str = Query("", max_length=1000),
    k: int = Query(8, ge=1, le=50),
    ctx: AppContext = Depends(app_context),
) -> HTMLResponse:
    answer = await run_in_threadpool(ctx.reads.query, q, k) if q.strip() else None
    return render("search.html", title=f"Search: {q}" if q else "Search", q=q, answer=answer)


@router.get("/sources", response_class=HTMLResponse)
def sources(
    status: str | None = Query(None, max_length=20),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ctx: AppContext = Depends(app_context),
) -> HTMLResponse:
    rows, total = ctx.reads.sources(status=status or None, limit=200, offset=offset)
    return render("sources.html", title="Sources", sources=rows, total=total, status=status, offset=offset)


@router.get("/sources/{source_id}", response_class=HTMLResponse)
def source(source_id: str, ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    detail = ctx.reads.source(source_id)
    return render("source.html", title=detail.source.title, d=detail)


@router.get("/contradictions", response_class=HTMLResponse)
def contradictions(ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    rows = ctx.reads.contradictions("open", limit=500)
    decided = [r for r in ctx.reads.contradictions("resolved", limit=200) if r.decision]
    return render("contradictions.html", title="Conflicting sources", rows=rows, decided=decided)
