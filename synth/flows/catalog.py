"""The catalog flow: ``wiki/index.md``, ``wiki/log.md`` and ``wiki/contradictions.md`` from the ledger.

There is one catalog job (key ``catalog``); every publish asks for it with a short delay, so bursts
of renders coalesce into one catalog commit (debounce).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.faults import crash_point
from store.git_store import ReadResult
from store.models import Claim, Contradiction, Entity, Job, Page, Source
from synth.deps import SynthDeps
from synth.flows import CatalogPayload
from synth.flows.render import SHOWN, claim_view
from wiki.catalog import CatalogEntry, DisputeView, LogEntry, render_contradictions, render_index, render_log
from wiki.entity_page import decision_line
from wiki.links import page_target

INDEX, LOG, CONTRADICTIONS = "wiki/index.md", "wiki/log.md", "wiki/contradictions.md"


def _iso(dt: datetime) -> str:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entries(session: Session) -> tuple[list[CatalogEntry], list[LogEntry], list[DisputeView]]:
    counts = dict(
        session.execute(
            select(Claim.entity_id, func.count()).where(Claim.status.in_(SHOWN)).group_by(Claim.entity_id)
        ).all()
    )
    entities = session.scalars(select(Entity).where(Entity.id.in_(list(counts)))).all()
    index = [
        CatalogEntry(e.name, e.type, page_target(e.page_path), e.description, int(counts[e.id])) for e in entities
    ]
    sources = session.scalars(select(Source).order_by(Source.created_at, Source.id)).all()
    per_source = dict(
        session.execute(select(Claim.source_id, func.count()).group_by(Claim.source_id)).all()
    )
    log: list[LogEntry] = []
    with_pages = set(
        session.scalars(select(Page.source_id).where(Page.kind == "source", Page.blob_id.is_not(None)))
    )
    for s in sources:
        # only sources whose page exists are linked; failed ones are listed by name with their reason
        target = page_target(f"wiki/sources/{s.slug}.md") if s.id in with_pages else ""
        title = s.title or s.origin
        if target and s.status in ("done", "extracted"):
            index.append(CatalogEntry(title, "source", target, (s.summary or "")[:200], int(per_source.get(s.id, 0))))
        detail = s.error or ""
        n = int(per_source.get(s.id, 0))
        if s.status in ("retracted", "replaced"):
            log.append(LogEntry(_iso(s.created_at), "ingested", title, target, n, (), ""))
            log.append(LogEntry(_iso(s.updated_at), s.status, title, target, n, (), detail))
        else:
            log.append(LogEntry(_iso(s.created_at), s.status, title, target, n, (), detail))
    disputes: list[DisputeView] = []
    open_rows = session.scalars(
        select(Contradiction).where((Contradiction.status == "open") | Contradiction.decision.is_not(None))
    ).all()
    for x in open_rows:
        a, b = session.get(Claim, x.claim_a), session.get(Claim, x.claim_b)
        entity = session.get(Entity, x.entity_id)
        if a is None or b is None or entity is None:
            continue
        srcs = {s.id: s for s in session.scalars(select(Source).where(Source.id.in_({a.source_id, b.source_id})))}
        decided = _iso(x.resolved_at or x.created_at)[:10]
        resolution = decision_line(x.decision, x.resolved_by or "", decided, x.note or "") if x.decision else None
        disputes.append(
            DisputeView(entity.name, page_target(entity.page_path), claim_view(a, srcs), claim_view(b, srcs),
                        x.reason, _iso(x.created_at), resolution=resolution, kept=x.kept_claim)
        )
    return index, log, disputes


CATALOG_PATHS = (INDEX, LOG, CONTRADICTIONS)


def catalog_changes(session: Session, current: Mapping[str, ReadResult], now: str) -> dict[str, bytes]:
    """The three catalog pages rendered from the ledger on top of their ``current`` versions.

    ``now`` is the date they are stamped with (``SynthDeps.today()``).
    """
    index, log, disputes = _entries(session)

    def prev(path: str) -> str | None:
        content = current[path].content
        return content.decode("utf-8", "replace") if content is not None else None

    return {
        INDEX: render_index(index, prev(INDEX), now).text.encode(),
        LOG: render_log(log, prev(LOG), now).text.encode(),
        CONTRADICTIONS: render_contradictions(disputes, prev(CONTRADICTIONS), now).text.encode(),
    }


def run_catalog(deps: SynthDeps, job: Job, payload: CatalogPayload) -> list[int]:
    """Regenerate the three catalog pages and publish them in one commit."""

    def build(current: Mapping[str, ReadResult]) -> dict[str, bytes | None]:
        with deps.session_factory() as session:
            changes: dict[str, bytes | None] = dict(catalog_changes(session, current, deps.today()))
        crash_point("catalog_write")  # crash tests: catalog rendered from the ledger, not published
        return changes

    deps.store.update(CATALOG_PATHS, build, "Catalog", [("Lore-Job", str(job.id))])
    return []
