"""``lore lint`` and ``GET /lint``: the checks of ``wiki.lint`` over the pages at HEAD and the ledger.

This module does the reading (git blobs at one HEAD commit; claims, disputes, render state, jobs and the
catalog's fresh generation from the ledger, all in the caller's session) and hands plain values to the
pure rules of ``wiki.lint``. It never writes: run it on a read-only session (``store.db.read_only``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.git_store import ABSENT, GitStore, ReadResult
from store.models import Claim, Contradiction, Entity, Job, Page, Source
from synth.flows.catalog import CATALOG_PATHS, catalog_changes
from synth.flows.render import SHOWN
from wiki.lint import (
    Finding,
    LedgerPage,
    OpenDispute,
    lint_catalog,
    lint_disputes,
    lint_freshness,
    lint_pages,
)

#: Job states that will still run: the work they stand for is not lost.
PENDING = ("queued", "running", "failed")


def unquoted_claims(session: Session) -> list[str]:
    """Ids of claims whose stored quote does not occur verbatim in their source's text."""
    texts = dict(session.execute(select(Source.id, Source.text)).all())
    bad = []
    for cid, source_id, quote in session.execute(select(Claim.id, Claim.source_id, Claim.quote)):
        text = texts.get(source_id)
        if text is None or quote not in text:
            bad.append(cid)
    return bad


def open_disputes(session: Session) -> list[OpenDispute]:
    """The ledger's open disputes, each with the page of the entity it is about."""
    rows = session.execute(
        select(Contradiction.claim_a, Contradiction.claim_b, Contradiction.created_at, Entity.type, Entity.slug)
        .join(Entity, Entity.id == Contradiction.entity_id)
        .where(Contradiction.status == "open")
    ).all()
    return [OpenDispute(f"wiki/{kind}/{slug}.md", a, b, opened) for a, b, opened, kind, slug in rows]


def ledger_pages(session: Session, heads: dict[str, ReadResult]) -> list[LedgerPage]:
    """What the ledger says every entity page should be, from the statuses the render flow shows.

    Args:
        session: the ledger.
        heads: path -> the page read at HEAD (absent paths may be missing from the mapping).
    """
    shown: dict[int, set[str]] = defaultdict(set)
    history: dict[int, set[str]] = defaultdict(set)
    for entity_id, cid, status in session.execute(
        select(Claim.entity_id, Claim.id, Claim.status).where(Claim.status.in_((*SHOWN, "superseded")))
    ):
        (shown if status in SHOWN else history)[entity_id].add(cid)
    queued = set(
        session.scalars(select(Job.entity_id).where(Job.kind == "render", Job.state.in_(PENDING)))
    )
    retracting = session.scalar(select(Job.id).where(Job.kind == "retract", Job.state.in_(PENDING)).limit(1))
    recorded = dict(session.execute(select(Page.path, Page.blob_id).where(Page.kind == "entity")).all())
    out = []
    for entity_id, kind, slug, revision in session.execute(
        select(Entity.id, Entity.type, Entity.slug, Entity.revision)
    ):
        path = f"wiki/{kind}/{slug}.md"
        claims = shown[entity_id] | history[entity_id] if shown[entity_id] else set()
        head = heads.get(path)
        at_head = head.version if head is not None and head.version != ABSENT else None
        out.append(
            LedgerPage(
                path=path,
                claim_ids=frozenset(claims),
                revision=revision,
                render_queued=entity_id in queued or retracting is not None,  # a retraction re-renders too
                as_recorded=at_head == recorded.get(path),
            )
        )
    return out


def catalog_findings(session: Session, heads: dict[str, ReadResult], pages: dict[str, str],
                     now: datetime | None = None) -> list[Finding]:
    """``catalog-drift`` for the three generated pages (none for a wiki with no page and no source)."""
    has_source = session.scalar(select(Source.id).limit(1)) is not None
    if not pages and not has_source:
        return []
    current = {p: heads.get(p, ReadResult(None, ABSENT)) for p in CATALOG_PATHS}
    today = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
    fresh = {p: body.decode("utf-8", "replace") for p, body in catalog_changes(session, current, today).items()}
    pending = session.scalar(
        select(func.count()).select_from(Job).where(Job.kind == "catalog", Job.state.in_(PENDING))
    )
    return lint_catalog(pages, fresh, note="catalog job queued" if pending else "")


def lint_wiki(
    session: Session,
    store: GitStore,
    *,
    min_claims: int = 2,
    dispute_days: int = 30,
    now: datetime | None = None,
) -> list[Finding]:
    """Every finding for the wiki at HEAD, sorted (errors first).

    Args:
        session: a ledger session; only read (use a read-only one). Its first query fixes the ledger
            snapshot on SQLite and PostgreSQL alike, so every check sees one state of the ledger.
        store: the git store; every page is read from one HEAD commit, before the ledger.
        min_claims: entity pages citing fewer claims are stubs.
        dispute_days: disputes open longer than this many days are reported.
        now: the current time (default: the system clock, UTC).

    Returns:
        The findings of ``wiki.lint.lint_pages``, ``lint_disputes``, ``lint_freshness`` and
        ``lint_catalog``, sorted by severity, kind, path and detail.
    """
    head = store.head()
    paths = [p for p in store.list("wiki/", at=head) if p.endswith(".md")] if head else []
    heads = store.read_many(paths, at=head) if head else {}
    pages = {p: r.content.decode("utf-8", "replace") for p, r in heads.items() if r.content is not None}
    claim_ids = set(session.scalars(select(Claim.id)))
    findings = lint_pages(pages, claim_ids, unquoted=unquoted_claims(session), min_claims=min_claims)
    findings += lint_disputes(open_disputes(session), now=now or datetime.now(UTC), max_age_days=dispute_days)
    findings += lint_freshness(pages, ledger_pages(session, heads))
    findings += catalog_findings(session, heads, pages, now)
    findings += [
        Finding("warning", "worktree-held", path,
                "changed in the working tree and not committed; the refresh keeps your version, so the "
                "folder shows an older page than HEAD: commit it (or `git checkout -- FILE` to drop it)")
        for path in store.held_back()
    ]  # fmt: skip
    return sorted(set(findings))


def summarise(findings: list[Finding]) -> dict[str, object]:
    """Counts by severity and kind, and every finding: the JSON of ``lore lint --json`` and ``GET /lint``."""
    by_kind: dict[str, dict[str, int]] = {"error": {}, "warning": {}}
    for f in findings:
        by_kind[f.severity][f.kind] = by_kind[f.severity].get(f.kind, 0) + 1
    return {
        "errors": sum(by_kind["error"].values()),
        "warnings": sum(by_kind["warning"].values()),
        "by_kind": by_kind,
        "findings": [f.__dict__ for f in findings],
    }
