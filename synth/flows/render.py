"""The render flow: bring one entity's page to the latest ledger revision (DESIGN section 3).

One render job exists per entity (``render:<id>``); claiming it is the entity's lease, so renders of
one entity never run concurrently, and every extraction that touches the entity while a render runs
just asks for one more run. That is the coalescing: fifty sources touching a hot page cost a handful
of renders, each bringing the page to whatever revision the ledger has reached.

A render: judge new claims (model, bounded) -> compose summary prose from the active claim set (cached
by the claim set's hash) -> render the page from the ledger (pure, ``wiki.entity_page``) -> publish with
``GitStore.update``; when the page changed meanwhile (a person or another writer) the page is
rendered again on top of the new blob, never merged as text. A page left with no claims is removed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.faults import crash_point
from store.git_store import ABSENT, ReadResult
from store.jobs import enqueue_job
from store.models import Alias, Claim, Contradiction, Entity, Job, Link, Page, Source
from synth import judge_flow
from synth.deps import SynthDeps
from synth.errors import SynthError
from synth.flows import RenderPayload
from synth.prompts import compose as compose_prompt
from wiki.entity_page import ClaimView, ConflictView, EntityView, render_entity_page
from wiki.links import page_target

log = logging.getLogger(__name__)

MAX_PASSES = 5
COMPOSE_MIN_CLAIMS = 3
COMPOSE_MAX_CLAIMS = 30
SHOWN = ("active", "disputed", "duplicate")


@dataclass
class Snapshot:
    revision: int
    view: EntityView
    path: str
    claim_set: str
    prose_needed: bool
    sources: list[str]
    reviews: list[tuple[int, str, str]] = field(default_factory=list)  # (dispute, decision, reviewer) not yet published


def claim_view(c: Claim, sources: dict[str, Source]) -> ClaimView:
    s = sources[c.source_id]
    return ClaimView(
        id=c.id,
        text=c.text,
        quote=c.quote,
        source_id=c.source_id,
        source_title=s.title or s.origin,
        source_page=page_target(f"wiki/sources/{s.slug}.md"),
        status=c.status,
        valid_from=c.valid_from,
        valid_to=c.valid_to,
        superseded_by=c.superseded_by,
    )


def snapshot(session: Session, entity_id: int) -> Snapshot | None:
    """Everything the page is rendered from, read in one short transaction."""
    entity = session.get(Entity, entity_id)
    if entity is None:
        return None
    claims = session.scalars(
        select(Claim).where(Claim.entity_id == entity_id, Claim.status.in_((*SHOWN, "superseded")))
    ).all()
    sources = {s.id: s for s in session.scalars(select(Source).where(Source.id.in_({c.source_id for c in claims})))}
    shown = sorted((c for c in claims if c.status in SHOWN), key=lambda c: (c.created_at, c.id))
    history = sorted((c for c in claims if c.status == "superseded"), key=lambda c: (c.created_at, c.id))
    conflicts = session.scalars(
        select(Contradiction).where(
            Contradiction.entity_id == entity_id,
            (Contradiction.status == "open") | Contradiction.decision.is_not(None),
        )
    ).all()
    by_id = {c.id: c for c in claims}
    conflict_views = [
        ConflictView(
            claim_view(by_id[x.claim_a], sources), claim_view(by_id[x.claim_b], sources), x.reason,
            decision=x.decision, kept=x.kept_claim, resolved_by=x.resolved_by or "",
            resolved_on=x.resolved_at.strftime("%Y-%m-%d") if x.resolved_at else "", note=x.note or "",
        )
        for x in conflicts
        if x.claim_a in by_id and x.claim_b in by_id
    ]
    reviews = sorted(
        (x.id, str(x.decision), x.resolved_by or "") for x in conflicts if x.decision and x.review_commit is None
    )
    related = _related(session, entity_id)
    page = session.scalar(select(Page).where(Page.path == entity.page_path))
    active_ids = sorted(c.id for c in shown if c.status != "duplicate")
    claim_set = hashlib.sha256("\n".join(active_ids).encode()).hexdigest()
    cached = page.prose if page is not None and page.prose_hash == claim_set else None
    aliases = sorted(session.scalars(select(Alias.alias).where(Alias.entity_id == entity_id)))
    view = EntityView(
        entity_id=entity.id,
        name=entity.name,
        type=entity.type,
        slug=entity.slug,
        aliases=aliases,
        revision=entity.revision,
        summary=cached,
        claims=[claim_view(c, sources) for c in shown],
        history=[claim_view(c, sources) for c in history],
        conflicts=conflict_views,
        related=related,
    )
    return Snapshot(
        revision=entity.revision,
        view=view,
        path=entity.page_path,
        claim_set=claim_set,
        prose_needed=cached is None and len(active_ids) >= COMPOSE_MIN_CLAIMS,
        sources=sorted(sources),
        reviews=reviews,
    )


def _related(session: Session, entity_id: int) -> list[tuple[str, str]]:
    rows = session.execute(
        select(Link.from_entity_id, Link.to_entity_id).where(
            Link.status == "active", (Link.from_entity_id == entity_id) | (Link.to_entity_id == entity_id)
        )
    ).all()
    other_ids = {b if a == entity_id else a for a, b in rows} - {entity_id}
    if not other_ids:
        return []
    others = session.scalars(select(Entity).where(Entity.id.in_(other_ids))).all()
    has_claims = set(
        session.scalars(select(Claim.entity_id).where(Claim.entity_id.in_(other_ids), Claim.status.in_(SHOWN)))
    )
    return sorted((e.name, page_target(e.page_path)) for e in others if e.id in has_claims)


def compose(deps: SynthDeps, snap: Snapshot, job_id: int) -> tuple[str | None, str | None]:
    """Summary prose citing claim ids, or None; returns (prose, assisted_by)."""
    claims = [c for c in snap.view.claims if c.status != "duplicate"][:COMPOSE_MAX_CLAIMS]
    ctx = compose_prompt.ComposeContext(
        snap.view.name, snap.view.type, tuple(compose_prompt.CitedClaim(c.id, c.text) for c in claims)
    )
    try:
        done = deps.client.complete(
            "compose",
            compose_prompt.build_messages(ctx),
            compose_prompt.Summary,
            job_id=job_id,
            validation_context=compose_prompt.validation_context(ctx),
        )
    except SynthError as exc:
        if type(exc).__name__ == "ModelUnavailable":
            raise
        log.warning("compose failed for %s, rendering facts only: %s", snap.path, exc)
        return None, None
    return done.value.summary, done.assisted_by


def _judge(deps: SynthDeps, entity_id: int, job_id: int) -> None:
    judge_flow.judge_entity(deps, entity_id, job_id)


def page_bytes(snap: Snapshot, previous: bytes | None, now: str) -> bytes | None:
    """The page file for ``snap`` on top of ``previous`` (a person's edits kept); None: remove it."""
    if not snap.view.claims:
        return None
    text = previous.decode("utf-8", "replace") if previous is not None else None
    return render_entity_page(snap.view, text, now).text.encode()


def _publish(deps: SynthDeps, snap: Snapshot, job: Job, assisted_by: str | None) -> tuple[str | None, str | None]:
    """Render on top of the page at HEAD and publish; returns (blob id or None if removed, commit)."""
    trailers = [("Lore-Job", str(job.id)), *[("Lore-Source", s) for s in snap.sources]]
    if assisted_by:
        trailers.append(("Assisted-by", assisted_by))
    trailers += [("Lore-Review", f"dispute {d} {decision} by {who}") for d, decision, who in snap.reviews]

    def build(current: Mapping[str, ReadResult]) -> dict[str, bytes | None]:
        page = current[snap.path]
        change = page_bytes(snap, page.content, deps.today())
        return {} if change is None and page.version == ABSENT else {snap.path: change}

    def message(changes: Mapping[str, bytes | None]) -> str:
        if changes[snap.path] is None:
            return f"Remove {snap.view.name}: no claims left"
        return f"Render {snap.view.name} (revision {snap.revision})"

    result = deps.store.update([snap.path], build, message, trailers)
    blob = result.blobs[snap.path]
    if blob is None and not result.changed:
        return None, None  # no claims and no page: nothing to publish
    return blob, result.commit


def run_render(deps: SynthDeps, job: Job, payload: RenderPayload) -> list[int]:
    """Render the entity until its page matches the ledger's latest revision."""
    entity_id = payload.entity_id
    follow: list[int] = []
    for _ in range(MAX_PASSES):
        _judge(deps, entity_id, job.id)
        with deps.session_factory() as session:
            snap = snapshot(session, entity_id)
            if snap is None:
                return follow
            entity = session.get(Entity, entity_id)
            assert entity is not None
            if entity.rendered_revision >= snap.revision and not snap.prose_needed:
                return follow
        assisted_by = None
        if snap.prose_needed:
            prose, assisted_by = compose(deps, snap, job.id)
            crash_point("after_model")  # crash tests: the summary is composed, not cached or published
            snap.view = replace(snap.view, summary=prose)
            with deps.session_factory() as session, session.begin():
                # A failed compose (an invalid or cut answer, not an outage) is kept as "no prose" for this
                # claim set: the page shows its facts, and the model is asked again once the claims change.
                cache_prose(session, snap, prose or "")
        blob, commit = _publish(deps, snap, job, assisted_by if snap.view.summary else None)
        with deps.session_factory() as session, session.begin():
            follow += record_render(session, deps, snap, blob, commit)
        index_entity_page(deps, snap)
        with deps.session_factory() as session:
            entity = session.get(Entity, entity_id)
            if entity is None or entity.revision <= snap.revision:
                return follow
    return follow


def cache_prose(session: Session, snap: Snapshot, prose: str) -> None:
    """Keep composed prose under its claim-set hash before the page is published.

    A render killed after publishing (before :func:`record_render`) then renders the very same page on
    retry without asking the model again, so the identical tree makes no second commit, and a model
    that answers differently the second time cannot publish the same revision twice.
    """
    page = session.scalar(select(Page).where(Page.path == snap.path))
    if page is None:  # not published yet: the row records it as absent at HEAD (blob_id None)
        page = Page(path=snap.path, kind="entity", entity_id=snap.view.entity_id, title=snap.view.name)
        session.add(page)
    page.prose = prose
    page.prose_hash = snap.claim_set
    session.flush()


def record_render(session: Session, deps: SynthDeps, snap: Snapshot, blob: str | None, commit: str | None) -> list[int]:
    entity = session.get(Entity, snap.view.entity_id)
    assert entity is not None
    page = session.scalar(select(Page).where(Page.path == snap.path))
    if page is None:
        page = Page(path=snap.path, kind="entity", entity_id=entity.id)
        session.add(page)
    page.title = entity.name
    page.blob_id = blob
    page.commit_id = commit or page.commit_id
    page.rendered_revision = snap.revision
    if snap.view.summary is not None:
        page.prose = snap.view.summary
        page.prose_hash = snap.claim_set
    page.renders = (page.renders or 0) + 1
    entity.rendered_revision = max(entity.rendered_revision, snap.revision)
    for dispute_id, _, _ in snap.reviews:
        dispute = session.get(Contradiction, dispute_id)
        if dispute is not None:
            dispute.review_commit = commit or page.commit_id or ""
    session.flush()
    finish_sources(session, snap.sources)
    return [request_catalog(session, deps)]


def request_catalog(session: Session, deps: SynthDeps) -> int:
    """Ask for a (debounced) catalog regeneration; returns the job id to dispatch."""
    job = enqueue_job(session, "catalog", "catalog", {}, delay_s=deps.catalog_debounce_s, requeue_finished=True,
                      max_attempts=deps.max_attempts)
    return job.id


def finish_sources(session: Session, source_ids: list[str]) -> None:
    """A source is ``done`` once its page is committed and every entity it touched is rendered past it."""
    for sid in source_ids:
        src = session.get(Source, sid)
        if src is None or src.status != "extracted":
            continue
        own_page = session.scalar(
            select(Page.id).where(Page.source_id == sid, Page.kind == "source", Page.blob_id.is_not(None))
        )
        if own_page is None:
            continue
        pending = session.scalar(
            select(Entity.id)
            .join(Claim, Claim.entity_id == Entity.id)
            .where(Claim.source_id == sid, Entity.rendered_revision < Entity.revision)
            .limit(1)
        )
        if pending is None:
            src.status = "done"
    session.flush()


def index_entity_page(deps: SynthDeps, snap: Snapshot) -> None:
    """Bring the search index up to date with the page at HEAD (or drop a removed page's chunks)."""
    if deps.search is None:
        return
    try:
        from search.page_index import index_page, remove_page

        current = deps.store.read(snap.path)
        if current.content is not None:
            index_page(deps.search, snap.path, current.content.decode("utf-8", "replace"), snap.view.claims)
        else:
            remove_page(deps.search, snap.path)
    except Exception as exc:  # the index is rebuildable (`lore reindex`); a failure must not fail the render
        log.warning("search index update failed for %s: %s", snap.path, exc)
