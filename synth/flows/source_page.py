"""The source page flow: ``wiki/sources/<slug>.md`` summarises one source and links what it touched."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import select

from store.git_store import ABSENT, ReadResult
from store.jobs import enqueue_job
from store.models import Claim, Entity, Job, Page, Source
from synth.deps import SynthDeps
from synth.flows import SourcePagePayload
from synth.flows.render import claim_view, finish_sources
from wiki.entity_page import SourceView, render_source_page
from wiki.links import page_target

log = logging.getLogger(__name__)


def source_page_path(slug: str) -> str:
    return f"wiki/sources/{slug}.md"


def index_source_text(deps: SynthDeps, source_id: str, title: str, text: str | None) -> None:
    """Raw source chunks feed the query's last tier; None drops them (retracted or replaced source)."""
    if deps.search is None:
        return
    try:
        from search.page_index import index_source

        index_source(deps.search, source_id, title, text)
    except Exception as exc:  # the index is rebuildable (`lore reindex`); never fail the page for it
        log.warning("search index update failed for source %s: %s", source_id[:12], exc)


def page_status(status: str) -> str:
    """The status a source page records. The page is written once extraction is over, and what it shows
    (summary, entities, claims) is then final: an ``extracted`` source (entity pages still rendering,
    after which it becomes ``done`` without its page changing) is written as ``done``."""
    return "done" if status == "extracted" else status


def run_source_page(deps: SynthDeps, job: Job, payload: SourcePagePayload) -> list[int]:
    """Render and publish the source's page (removed when the source is retracted)."""
    source_id = payload.source_id
    with deps.session_factory() as session:
        src = session.get(Source, source_id)
        if src is None:
            return []
        path = source_page_path(src.slug)
        claims = session.scalars(
            select(Claim).where(Claim.source_id == source_id, Claim.status != "retracted").order_by(Claim.id)
        ).all()
        entity_ids = {c.entity_id for c in claims}
        entities = session.scalars(select(Entity).where(Entity.id.in_(entity_ids))).all()
        view = SourceView(
            source_id=src.id,
            slug=src.slug,
            title=src.title or src.origin,
            origin=src.origin,
            summary=src.summary,
            entities=sorted((e.name, page_target(e.page_path)) for e in entities),
            claims=[claim_view(c, {src.id: src}) for c in claims],
            status=page_status(src.status),
            warning=src.warning,
        )
        removed = src.status in ("retracted", "replaced")
        text = None if removed else src.text
    trailers = [("Lore-Source", source_id), ("Lore-Job", str(job.id))]
    if view.summary and payload.assisted_by:
        trailers.append(("Assisted-by", payload.assisted_by))
    now = deps.today()

    def build(current: Mapping[str, ReadResult]) -> dict[str, bytes | None]:
        page = current[path]
        if removed:
            return {path: None} if page.version != ABSENT else {}
        previous = page.content.decode("utf-8", "replace") if page.content is not None else None
        return {path: render_source_page(view, previous, now).text.encode()}

    message = f"Remove source page {view.title}" if removed else f"Source page {view.title}"
    blob = deps.store.update([path], build, message, trailers).blobs[path]
    index_source_text(deps, source_id, view.title, text)
    with deps.session_factory() as session, session.begin():
        page = session.scalar(select(Page).where(Page.path == path))
        if page is None:
            page = Page(path=path, kind="source", source_id=source_id)
            session.add(page)
        page.title = view.title
        page.blob_id = blob
        page.renders = (page.renders or 0) + 1
        session.flush()
        finish_sources(session, [source_id])
        catalog = enqueue_job(session, "catalog", "catalog", {}, delay_s=deps.catalog_debounce_s,
                              requeue_finished=True, max_attempts=deps.max_attempts)
        return [catalog.id]
