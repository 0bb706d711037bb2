"""Read-side queries of the ledger: what the API, the MCP tools and the web UI show.

Every function takes an open session and returns the plain frozen dataclasses of
:mod:`store.read_views` (never ORM rows, except ``entities_by_slug`` and ``entity_for_page``). Nothing
here writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from store.models import Alias, Claim, Contradiction, Entity, Job, Link, ModelCall, Page, Source, utcnow
from store.read_views import (
    Citation,
    ClaimView,
    ContradictionView,
    EntityView,
    JobView,
    PageMeta,
    SourceDetail,
    SourceView,
)

__all__ = [
    "Citation",
    "ClaimView",
    "ContradictionView",
    "EntityView",
    "JobView",
    "PageMeta",
    "SourceDetail",
    "SourceView",
    "citations",
    "entities_by_slug",
    "entity_for_page",
    "entity_names",
    "entity_view",
    "get_source",
    "count_contradictions",
    "entity_ids_named",
    "list_contradictions",
    "list_sources",
    "name_fingerprint",
    "entity_paths",
    "LedgerFigures",
    "ledger_figures",
    "page_claims",
    "page_disputes",
    "page_meta",
    "source_detail",
    "source_for_page",
    "source_page_path",
]

SOURCE_PAGE_DIR = "wiki/sources"


def source_page_path(slug: str) -> str:
    """Repository path of a source's summary page."""
    return f"{SOURCE_PAGE_DIR}/{slug}.md"


# --- conversions ---------------------------------------------------------------------------------


def _source_view(s: Source) -> SourceView:
    return SourceView(
        id=s.id,
        slug=s.slug,
        title=s.title or s.slug,
        origin=s.origin,
        media_type=s.media_type,
        size=s.size,
        status=s.status,
        error=s.error,
        version=s.version,
        previous_id=s.previous_id,
        claims_rejected=s.claims_rejected,
        created_at=s.created_at,
        updated_at=s.updated_at,
        page_path=source_page_path(s.slug),
    )


def _claim_view(c: Claim, e: Entity, s: Source) -> ClaimView:
    return ClaimView(
        id=c.id,
        text=c.text,
        quote=c.quote,
        status=c.status,
        entity_id=e.id,
        entity_name=e.name,
        entity_page=e.page_path,
        source_id=s.id,
        source_title=s.title or s.slug,
        valid_from=c.valid_from,
        valid_to=c.valid_to,
        superseded_by=c.superseded_by,
        observed_at=c.observed_at,
    )


def _claims_query():  # type: ignore[no-untyped-def]
    return (
        select(Claim, Entity, Source)
        .join(Entity, Claim.entity_id == Entity.id)
        .join(Source, Claim.source_id == Source.id)
    )


# --- pages ---------------------------------------------------------------------------------------


def page_meta(session: Session, paths: Iterable[str] | None = None) -> dict[str, PageMeta]:
    """Render-state rows of pages (title, kind, entity, source), keyed by path.

    Args:
        paths: only these paths; None for every page the ledger knows.
    """
    q = select(Page.path, Page.title, Page.kind, Page.entity_id, Page.source_id)
    wanted = None if paths is None else list(paths)
    out: dict[str, PageMeta] = {}
    if wanted is not None:
        for start in range(0, len(wanted), 500):
            rows = session.execute(q.where(Page.path.in_(wanted[start : start + 500])))
            out.update({r.path: PageMeta(r.path, r.title, r.kind, r.entity_id, r.source_id) for r in rows})
        return out
    for r in session.execute(q):
        out[r.path] = PageMeta(r.path, r.title, r.kind, r.entity_id, r.source_id)
    return out


def entity_for_page(session: Session, path: str) -> Entity | None:
    """The entity whose page is ``path`` (by the page row, else by ``wiki/<type>/<slug>.md``)."""
    page = session.scalar(select(Page).where(Page.path == path))
    if page is not None and page.entity_id is not None:
        return session.get(Entity, page.entity_id)
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "wiki" and parts[2].endswith(".md"):
        return session.scalar(select(Entity).where(Entity.type == parts[1], Entity.slug == parts[2][:-3]))
    return None


def source_for_page(session: Session, path: str) -> Source | None:
    """The source whose summary page is ``path``."""
    prefix = SOURCE_PAGE_DIR + "/"
    if not path.startswith(prefix) or not path.endswith(".md"):
        return None
    return session.scalar(select(Source).where(Source.slug == path[len(prefix) : -3]))


def page_claims(session: Session, path: str, *, statuses: Sequence[str] | None = None) -> list[ClaimView]:
    """Claims shown on the page at ``path``: an entity's claims, or the claims a source made.

    Args:
        statuses: keep only these claim statuses (None: all).
    """
    q = _claims_query()
    entity = entity_for_page(session, path)
    if entity is not None:
        q = q.where(Claim.entity_id == entity.id)
    else:
        source = source_for_page(session, path)
        if source is None:
            return []
        q = q.where(Claim.source_id == source.id)
    if statuses:
        q = q.where(Claim.status.in_(list(statuses)))
    return [_claim_view(c, e, s) for c, e, s in session.execute(q.order_by(Claim.created_at, Claim.id))]


def citations(session: Session, claim_ids: Iterable[str]) -> dict[str, Citation]:
    """The citations behind footnote labels; labels that are no claim id are left out."""
    ids = sorted({i for i in claim_ids if i and len(i) <= 40})
    out: dict[str, Citation] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(Claim, Source)
            .join(Source, Claim.source_id == Source.id)
            .where(Claim.id.in_(ids[start : start + 500]))
        )
        for c, s in rows:
            out[c.id] = Citation(
                claim_id=c.id,
                text=c.text,
                quote=c.quote,
                status=c.status,
                source_id=s.id,
                source_title=s.title or s.slug,
                source_slug=s.slug,
                source_page=source_page_path(s.slug),
                source_status=s.status,
            )
    return out


# --- entities ------------------------------------------------------------------------------------


def entities_by_slug(session: Session, slug: str, type_: str | None = None) -> list[Entity]:
    """Entities with this slug (one per type at most), optionally of one type."""
    q = select(Entity).where(Entity.slug == slug)
    if type_:
        q = q.where(Entity.type == type_)
    return list(session.scalars(q.order_by(Entity.type)))


def entity_view(session: Session, entity: Entity) -> EntityView:
    """An entity with its aliases, claim counts per status and its links."""
    aliases = tuple(session.scalars(select(Alias.alias).where(Alias.entity_id == entity.id).order_by(Alias.alias)))
    counts = {
        status: int(n)
        for status, n in session.execute(
            select(Claim.status, func.count()).where(Claim.entity_id == entity.id).group_by(Claim.status)
        )
    }
    other = aliased(Entity)
    out_rows = session.execute(
        select(Link.relation, other)
        .join(other, Link.to_entity_id == other.id)
        .where(Link.from_entity_id == entity.id, Link.status == "active")
        .order_by(Link.relation, other.name)
    )
    in_rows = session.execute(
        select(Link.relation, other)
        .join(other, Link.from_entity_id == other.id)
        .where(Link.to_entity_id == entity.id, Link.status == "active")
        .order_by(Link.relation, other.name)
    )
    return EntityView(
        id=entity.id,
        name=entity.name,
        type=entity.type,
        slug=entity.slug,
        description=entity.description,
        page_path=entity.page_path,
        aliases=aliases,
        claim_counts=counts,
        links_out=tuple(dict.fromkeys((rel, e.name, e.page_path) for rel, e in out_rows)),
        links_in=tuple(dict.fromkeys((rel, e.name, e.page_path) for rel, e in in_rows)),
    )


def entity_names(session: Session) -> list[tuple[str, int]]:
    """Every entity name and alias with its entity id (for spotting entities named in a question)."""
    names = [(n, i) for n, i in session.execute(select(Entity.name, Entity.id))]
    names += [(a, i) for a, i in session.execute(select(Alias.alias, Alias.entity_id))]
    return names


def name_fingerprint(session: Session) -> tuple[int, int, int, int]:
    """Changes whenever an entity or alias is added or removed (cheap cache key for name lookups)."""
    e = session.execute(select(func.count(Entity.id), func.coalesce(func.max(Entity.id), 0))).one()
    a = session.execute(select(func.count(Alias.id), func.coalesce(func.max(Alias.id), 0))).one()
    return int(e[0]), int(e[1]), int(a[0]), int(a[1])


# --- sources -------------------------------------------------------------------------------------


def list_sources(
    session: Session, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[SourceView], int]:
    """Sources, newest first, with the total count for paging."""
    q = select(Source)
    count_q = select(func.count()).select_from(Source)
    if status:
        q = q.where(Source.status == status)
        count_q = count_q.where(Source.status == status)
    total = int(session.scalar(count_q) or 0)
    rows = session.scalars(q.order_by(Source.created_at.desc(), Source.id).limit(limit).offset(offset))
    return [_source_view(s) for s in rows], total


def get_source(session: Session, source_id: str) -> SourceView | None:
    """One source by its id (the sha256 of its bytes) or by a unique id prefix of at least 8 digits."""
    source = session.get(Source, source_id)
    if source is None and 8 <= len(source_id) < 64 and all(ch in "0123456789abcdef" for ch in source_id):
        found = list(session.scalars(select(Source).where(Source.id.like(source_id + "%")).limit(2)))
        source = found[0] if len(found) == 1 else None
    return None if source is None else _source_view(source)


def source_detail(session: Session, source_id: str) -> SourceDetail | None:
    """A source with its claims, the pages its claims appear on, its jobs and every error recorded."""
    view = get_source(session, source_id)
    if view is None:
        return None
    claims = [
        _claim_view(c, e, s)
        for c, e, s in session.execute(
            _claims_query().where(Claim.source_id == view.id).order_by(Claim.created_at, Claim.id)
        )
    ]
    pages = sorted({c.entity_page for c in claims})
    touched = (view.page_path, *pages)
    jobs = tuple(
        JobView(j.id, j.kind, j.state, j.attempts, j.max_attempts, j.last_error, j.updated_at)
        for j in session.scalars(select(Job).where(Job.source_id == view.id).order_by(Job.id))
    )
    errors = [view.error] if view.error else []
    errors += [f"{j.kind} job {j.id} ({j.state}): {j.last_error}" for j in jobs if j.last_error]
    return SourceDetail(source=view, claims=tuple(claims), pages_touched=touched, jobs=jobs, errors=tuple(errors))


# --- contradictions ------------------------------------------------------------------------------


def entity_ids_named(session: Session, name: str) -> set[int]:
    """Entities whose slug, name or an alias is ``name`` (case-insensitive)."""
    needle = name.strip().casefold()
    if not needle:
        return set()
    found = set(session.scalars(select(Entity.id).where(
        (Entity.slug == needle) | (func.lower(Entity.name) == needle)
    )))
    found |= set(session.scalars(select(Alias.entity_id).where(func.lower(Alias.alias) == needle)))
    return found


def _contradiction_filter(q: Any, status: str | None, entity_id: int | None, decision: str | None) -> Any:
    if status:
        q = q.where(Contradiction.status == status)
    if entity_id is not None:
        q = q.where(Contradiction.entity_id == entity_id)
    if decision:
        q = q.where(Contradiction.decision == decision)
    return q


def count_contradictions(
    session: Session, *, status: str | None = "open", entity_id: int | None = None, decision: str | None = None
) -> int:
    """How many disputes match the filters of :func:`list_contradictions`."""
    q = _contradiction_filter(select(func.count()).select_from(Contradiction), status, entity_id, decision)
    return int(session.scalar(q) or 0)


def list_contradictions(
    session: Session,
    *,
    status: str | None = "open",
    limit: int = 200,
    offset: int = 0,
    entity_id: int | None = None,
    decision: str | None = None,
    dispute_ids: Sequence[int] | None = None,
) -> list[ContradictionView]:
    """Disputes between claims, newest first (``dispute_ids``: only these)."""
    q = _contradiction_filter(select(Contradiction), status, entity_id, decision)
    if dispute_ids is not None:
        q = q.where(Contradiction.id.in_(list(dispute_ids)))
    rows = list(
        session.scalars(q.order_by(Contradiction.created_at.desc(), Contradiction.id).limit(limit).offset(offset))
    )
    ids = {r.claim_a for r in rows} | {r.claim_b for r in rows}
    claims = (
        {c.id: _claim_view(c, e, s) for c, e, s in session.execute(_claims_query().where(Claim.id.in_(sorted(ids))))}
        if ids
        else {}
    )
    out = []
    for r in rows:
        a, b = claims.get(r.claim_a), claims.get(r.claim_b)
        if a is None or b is None:
            continue
        out.append(ContradictionView(r.id, r.status, r.reason, a.entity_name, a.entity_page, a, b, r.created_at,
                                     r.decision, r.kept_claim, r.note, r.resolved_by, r.resolved_at))
    return out


def page_disputes(session: Session, entity_id: int) -> list[tuple[str, str]]:
    """Open disputes on one entity as claim id pairs."""
    rows = session.execute(
        select(Contradiction.claim_a, Contradiction.claim_b).where(
            Contradiction.entity_id == entity_id, Contradiction.status == "open"
        )
    )
    return [(a, b) for a, b in rows]


def entity_paths(session: Session) -> dict[int, str]:
    """Entity id -> the path of its page (``wiki/<type>/<slug>.md``)."""
    return {i: f"wiki/{t}/{s}.md" for i, t, s in session.execute(select(Entity.id, Entity.type, Entity.slug))}


@dataclass(frozen=True)
class LedgerFigures:
    """Counts for the metrics endpoint, read in one session."""

    queue_depth: int
    jobs: dict[str, int]
    model_calls: dict[tuple[str, str], int]
    model_tokens: dict[tuple[str, str], int]
    page_conflicts: int
    sources: dict[str, int]
    claims: dict[str, int]
    open_disputes: int


def ledger_figures(session: Session) -> LedgerFigures:
    """Work, model and content figures of the ledger (a handful of ``GROUP BY`` queries)."""
    now = utcnow()
    due = session.scalar(
        select(func.count()).select_from(Job).where(Job.state.in_(("queued", "failed")), Job.next_attempt_at <= now)
    )
    jobs = {str(state): int(n) for state, n in session.execute(select(Job.state, func.count()).group_by(Job.state))}
    calls: dict[tuple[str, str], int] = {}
    tokens: dict[tuple[str, str], int] = {}
    rows = session.execute(
        select(
            ModelCall.stage,
            ModelCall.outcome,
            func.count(),
            func.coalesce(func.sum(ModelCall.prompt_tokens), 0),
            func.coalesce(func.sum(ModelCall.completion_tokens), 0),
            func.coalesce(func.sum(ModelCall.reasoning_tokens), 0),
        ).group_by(ModelCall.stage, ModelCall.outcome)
    ).all()
    for stage, outcome, n, prompt, completion, reasoning in rows:
        calls[(str(stage), str(outcome))] = int(n)
        for kind, value in (("prompt", prompt), ("completion", completion), ("reasoning", reasoning)):
            tokens[(str(stage), kind)] = tokens.get((str(stage), kind), 0) + int(value)
    conflicts = session.scalar(select(func.count()).select_from(Job).where(Job.last_error.like("%PageConflict%")))
    sources = {str(s): int(n) for s, n in session.execute(select(Source.status, func.count()).group_by(Source.status))}
    claims = {str(s): int(n) for s, n in session.execute(select(Claim.status, func.count()).group_by(Claim.status))}
    disputes = session.scalar(select(func.count()).select_from(Contradiction).where(Contradiction.status == "open"))
    return LedgerFigures(int(due or 0), jobs, calls, tokens, int(conflicts or 0), sources, claims, int(disputes or 0))
