"""The web UI's read views: server-rendered Jinja2 pages (the forms that change things are in
:mod:`api.ui_actions`, login in :mod:`api.ui_auth`).

``/ui`` is the catalog with a search box; ``/ui/pages/<path>`` shows a page with working wikilinks, its
footnotes, a citations panel (each claim's quote and a link to its source), the open disputes about
its entity (with the resolve form for a ``curate`` login), the pages that link to it (backlinks), and
links to its history and graph; ``/ui/graph/<path>`` draws the entity's neighbourhood as SVG;
``/ui/search``, ``/ui/sources``, ``/ui/sources/<id>`` (refreshing itself while the source is being
worked on) and ``/ui/contradictions`` show the rest. Page markdown is rendered by
``wiki.markdown.to_html`` (``js-default`` + nh3); everything else goes through Jinja2's autoescaping.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.context import AppContext, app_context
from api.reads import ui_href
from api.routes.pages import MAX_OFFSET
from api.ui_auth import Visitor, ui_visitor
from api.ui_render import render

router = APIRouter(prefix="/ui", include_in_schema=False)

#: Source statuses after which nothing more happens to a source by itself.
SETTLED = ("done", "failed", "retracted", "replaced")
#: Job states still to come or under way.
UNDER_WAY = ("queued", "running", "failed")
REFRESH_S = 2


@router.get("", response_class=HTMLResponse)
def catalog(ui: Visitor = Depends(ui_visitor), ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    listing = ctx.reads.list_pages(limit=10_000_000)
    commit, total = listing.commit, listing.total
    groups: dict[str, list[tuple[str, str]]] = {}
    for row in listing.pages:
        groups.setdefault(row.type, []).append((row.title, row.path))
    ordered = sorted(groups.items(), key=lambda kv: (kv[0] in ("catalog", "sources"), kv[0]))
    return render(
        "catalog.html",
        ui,
        title="Lore",
        groups=[(kind, sorted(items, key=lambda t: t[0].casefold())) for kind, items in ordered],
        commit=commit,
        total=total,
    )


@router.get("/pages/{path:path}", response_class=HTMLResponse)
def page(path: str, ui: Visitor = Depends(ui_visitor), ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    view = ctx.reads.ui_page(path)
    return render(
        "page.html",
        ui,
        title=view.page.title,
        page=view.page,
        body_html=view.body_html,
        citations=list(view.citations),
        disputes=ctx.reads.open_disputes(path),
        backlinks=ctx.reads.backlinks(path),
        source_id=ctx.reads.page_source(path),
        back=ui_href(path) + "#conflicts",
    )


@router.get("/graph/{path:path}", response_class=HTMLResponse)
def graph(path: str, ui: Visitor = Depends(ui_visitor), ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    view = ctx.reads.neighbourhood(path)
    return render("graph.html", ui, title=f"Graph of {view.center.title}", path=path, g=view)


@router.get("/history/{path:path}", response_class=HTMLResponse)
def history(path: str, ui: Visitor = Depends(ui_visitor), ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    commits = ctx.reads.history(path, limit=100)
    return render("history.html", ui, title=f"History of {path}", path=path, commits=commits)


@router.get("/diff/{path:path}", response_class=HTMLResponse)
def diff(
    path: str,
    a: str = Query(..., pattern=r"^[0-9a-fA-F]{4,64}$"),
    b: str = Query(..., pattern=r"^[0-9a-fA-F]{4,64}$"),
    ui: Visitor = Depends(ui_visitor),
    ctx: AppContext = Depends(app_context),
) -> HTMLResponse:
    _, _, text = ctx.reads.diff(path, a, b)
    lines = [(line[:1] if line[:1] in "+-@" else " ", line) for line in text.splitlines()]
    return render("diff.html", ui, title=f"Diff of {path}", path=path, a=a, b=b, lines=lines)


@router.get("/search", response_class=HTMLResponse)
async def search(
    q: str = Query("", max_length=1000),
    k: int = Query(8, ge=1, le=50),
    ui: Visitor = Depends(ui_visitor),
    ctx: AppContext = Depends(app_context),
) -> HTMLResponse:
    answer = await run_in_threadpool(ctx.reads.query, q, k) if q.strip() else None
    return render("search.html", ui, title=f"Search: {q}" if q else "Search", q=q, answer=answer)


@router.get("/sources", response_class=HTMLResponse)
def sources(
    status: str | None = Query(None, max_length=20),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ui: Visitor = Depends(ui_visitor),
    ctx: AppContext = Depends(app_context),
) -> HTMLResponse:
    rows, total = ctx.reads.sources(status=status or None, limit=200, offset=offset)
    return render("sources.html", ui, title="Sources", sources=rows, total=total, status=status, offset=offset)


@router.get("/sources/{source_id}", response_class=HTMLResponse)
def source(source_id: str, ui: Visitor = Depends(ui_visitor), ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    detail = ctx.reads.source(source_id)
    jobs_left = [j for j in detail.jobs if j.state in UNDER_WAY]
    working = detail.source.status not in SETTLED or bool(jobs_left)
    finished = sum(1 for j in detail.jobs if j.state not in UNDER_WAY)
    return render(
        "source.html",
        ui,
        title=detail.source.title,
        d=detail,
        working=working,
        refresh_s=REFRESH_S if working else None,
        finished=finished,
    )


@router.get("/contradictions", response_class=HTMLResponse)
def contradictions(ui: Visitor = Depends(ui_visitor), ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    rows = ctx.reads.contradictions("open", limit=500)
    decided = [r for r in ctx.reads.contradictions("resolved", limit=200) if r.decision]
    return render(
        "contradictions.html", ui, title="Conflicting sources", rows=rows, decided=decided, back="/ui/contradictions"
    )
