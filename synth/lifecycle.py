"""Source lifecycle: retraction and new versions (DESIGN section 1, "Retraction is exact").

Retracting a source marks its claims ``retracted``, re-activates the claims they had superseded or
duplicated, resolves the disputes they were part of, and re-renders exactly the pages it touched (plus
pages that linked to a page that disappears), the source page's removal and the catalog — all in ONE
commit, so one ``git revert`` undoes it. A page left with no claims is removed. The raw file leaves the
tree and stays in history.

A new version of a source retracts the old versions' claims in the same transaction that adds the new
ones (``replace_older_versions``), so only pages whose claims changed are rendered again. Every older
version is replaced, not only the one the new version names: the chain of ``previous_id`` is walked to
its start (a failed version in the middle has no claims, but the version before it must still go) and
any other older source still current under the same name goes too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from store.git_store import ABSENT, ReadResult
from store.jobs import enqueue_job
from store.models import Claim, Contradiction, Entity, Job, Link, Page, Source
from synth.deps import SynthDeps
from synth.errors import SynthError
from synth.flows.catalog import CATALOG_PATHS, catalog_changes
from synth.flows.render import Snapshot, compose, index_entity_page, page_bytes, record_render, snapshot
from synth.flows.source_page import index_source_text, source_page_path

log = logging.getLogger(__name__)

FINISHED_WITH = ("retracted", "replaced")  # a source in these states no longer counts


class SourceNotFound(SynthError):
    """No source matches the given id, slug or name."""


def find_source(session: Session, ref: str) -> Source:
    """A source by full sha256, unique sha prefix (>= 8), slug, or origin name."""
    ref = ref.strip()
    src = session.get(Source, ref)
    if src is not None:
        return src
    matches = list(session.scalars(select(Source).where(or_(Source.slug == ref, Source.origin == ref))))
    if not matches and len(ref) >= 8 and all(c in "0123456789abcdef" for c in ref.lower()):
        matches = list(session.scalars(select(Source).where(Source.id.like(ref.lower() + "%"))))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SourceNotFound(f"no source matches {ref!r}")
    raise SourceNotFound(f"{ref!r} matches {len(matches)} sources; give more of the sha256")


def request_retraction(session: Session, source_id: str, *, max_attempts: int = 5) -> Job:
    """Enqueue the retraction of a source (idempotent); the caller commits, then dispatches."""
    src = session.get(Source, source_id)
    if src is None:
        raise SourceNotFound(f"no source {source_id}")
    return enqueue_job(session, "retract", f"retract:{source_id}", {"source_id": source_id},
                       source_id=source_id, max_attempts=max_attempts)


def retract_claims(session: Session, claim_ids: set[str]) -> set[int]:
    """Retract claims and undo what they did to others; returns the entities whose claims changed."""
    if not claim_ids:
        return set()
    touched: set[int] = set()
    for claim in session.scalars(select(Claim).where(Claim.id.in_(claim_ids))):
        if claim.status != "retracted":
            claim.status = "retracted"
            touched.add(claim.entity_id)
    for claim in session.scalars(
        select(Claim).where(Claim.superseded_by.in_(claim_ids), Claim.status.in_(("superseded", "duplicate")))
    ):
        claim.status = "active"
        claim.superseded_by = None
        touched.add(claim.entity_id)
    disputes = session.scalars(
        select(Contradiction).where(
            Contradiction.status == "open",
            or_(Contradiction.claim_a.in_(claim_ids), Contradiction.claim_b.in_(claim_ids)),
        )
    ).all()
    for x in disputes:
        x.status = "resolved"
        x.reason = (x.reason + " (resolved: a side was retracted)")[:2000]
    session.flush()
    for x in disputes:
        for other_id in (x.claim_a, x.claim_b):
            other = session.get(Claim, other_id)
            if other is None or other.status != "disputed":
                continue
            still = session.scalar(
                select(Contradiction.id).where(
                    Contradiction.status == "open",
                    or_(Contradiction.claim_a == other_id, Contradiction.claim_b == other_id),
                )
            )
            if still is None:
                other.status = "active"
                touched.add(other.entity_id)
    for entity_id in touched:
        entity = session.get(Entity, entity_id)
        if entity is not None:
            entity.revision += 1
    session.flush()
    return touched


def older_versions(session: Session, src: Source, previous_id: str | None) -> list[Source]:
    """The versions ``src`` replaces: its predecessors (``previous_id`` chain) and any older source still
    current under its origin key; retracted and replaced ones are left out."""
    found: dict[str, Source] = {}
    pid = previous_id or src.previous_id
    while pid and pid != src.id and pid not in found:
        old = session.get(Source, pid)
        if old is None:
            break
        found[pid] = old
        pid = old.previous_id
    same_name = select(Source).where(
        Source.origin_key == src.origin_key,
        Source.id != src.id,
        Source.version < src.version,
        Source.status.not_in(FINISHED_WITH),
    )
    for old in session.scalars(same_name):
        found.setdefault(old.id, old)
    return [old for old in found.values() if old.status not in FINISHED_WITH]


def replace_older_versions(
    session: Session, src: Source, previous_id: str | None, *, max_attempts: int = 5
) -> tuple[set[int], list[Job]]:
    """``src`` is the newest successful version: every older one is ``replaced`` and its claims and links
    retracted in the caller's transaction. Returns the entities whose claims changed and the source-page
    jobs (removing the old versions' pages) to dispatch after commit."""
    touched: set[int] = set()
    jobs: list[Job] = []
    for old in older_versions(session, src, previous_id):
        old_claims = set(session.scalars(select(Claim.id).where(Claim.source_id == old.id)))
        touched |= retract_claims(session, old_claims)
        for link in session.scalars(select(Link).where(Link.source_id == old.id, Link.status == "active")):
            link.status = "retracted"
            touched.update((link.from_entity_id, link.to_entity_id))
        old.status = "replaced"
        jobs.append(
            enqueue_job(session, "source_page", f"source_page:{old.id}", {"source_id": old.id},
                        source_id=old.id, max_attempts=max_attempts, requeue_finished=True)
        )
        log.info("%s (version %d) replaces %s (version %d)", src.id[:12], src.version, old.id[:12], old.version)
    session.flush()
    return touched, jobs


def _mark_retracted(session: Session, source_id: str) -> tuple[Source | None, set[int]]:
    src = session.get(Source, source_id)
    if src is None:
        return None, set()
    claims = set(session.scalars(select(Claim.id).where(Claim.source_id == source_id)))
    touched = retract_claims(session, claims)
    touched |= set(session.scalars(select(Claim.entity_id).where(Claim.source_id == source_id)))
    for link in session.scalars(select(Link).where(Link.source_id == source_id, Link.status == "active")):
        link.status = "retracted"
        touched.update((link.from_entity_id, link.to_entity_id))
    src.status = "retracted"
    src.error = None
    page = session.scalar(select(Page).where(Page.source_id == source_id, Page.kind == "source"))
    if page is not None:
        page.blob_id = None  # removed in the retraction's commit; the catalog stops linking it
    session.flush()
    return src, touched


def _neighbours_of_removed(session: Session, snaps: dict[int, Snapshot]) -> set[int]:
    """Entities linking to a page that this change removes (their Related list changes)."""
    removed = {eid for eid, s in snaps.items() if not s.view.claims}
    if not removed:
        return set()
    rows = session.execute(
        select(Link.from_entity_id, Link.to_entity_id).where(
            or_(Link.from_entity_id.in_(removed), Link.to_entity_id.in_(removed))
        )
    ).all()
    return {x for pair in rows for x in pair} - set(snaps)


def run_retract(deps: SynthDeps, job: Job) -> list[int]:
    """Retract one source and publish every page it changes in a single commit."""
    source_id = str(job.payload["source_id"])
    with deps.session_factory() as session, session.begin():
        src, touched = _mark_retracted(session, source_id)
        if src is None:
            return []
        title, slug, raw_path = src.title or src.origin, src.slug, src.raw_path
    with deps.session_factory() as session:
        snaps = {eid: s for eid in sorted(touched) if (s := snapshot(session, eid)) is not None}
        for eid in sorted(_neighbours_of_removed(session, snaps)):
            if (s := snapshot(session, eid)) is not None:
                snaps[eid] = s
    assisted = None
    for snap in snaps.values():
        if snap.prose_needed and snap.view.claims:
            prose, by = compose(deps, snap, job.id)
            if prose:
                snap.view = replace(snap.view, summary=prose)
                assisted = assisted or by
    paths = [s.path for s in snaps.values()] + [source_page_path(slug), *CATALOG_PATHS]
    if raw_path:
        paths.append(raw_path)

    def build(current: Mapping[str, ReadResult]) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {}
        for snap in snaps.values():
            body = page_bytes(snap, current[snap.path].content, deps.today())
            if body is not None or current[snap.path].version != ABSENT:
                changes[snap.path] = body
        for path in (source_page_path(slug), raw_path):
            if path and current[path].version != ABSENT:
                changes[path] = None
        with deps.session_factory() as session:
            changes.update(catalog_changes(session, current, deps.today()))
        return changes

    trailers = [("Lore-Source", source_id), ("Lore-Job", str(job.id))]
    if assisted:
        trailers.append(("Assisted-by", assisted))
    result = deps.store.update(paths, build, f"Retract {title}", trailers)
    follow: list[int] = []
    with deps.session_factory() as session, session.begin():
        for snap in snaps.values():
            follow += record_render(session, deps, snap, result.blobs[snap.path], result.commit)
    index_source_text(deps, source_id, title, None)
    for snap in snaps.values():
        index_entity_page(deps, snap)
    log.info("retracted %s: %d page(s) in commit %s", source_id[:12], len(paths), (result.commit or "")[:10])
    return sorted(set(follow))
