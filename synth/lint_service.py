"""``lore lint``: the deterministic checks of ``wiki.lint`` over the pages at HEAD and the ledger.

This module does the reading (git blobs at HEAD, claims and source texts from the ledger) and adds the
checks that need the ledger; ``wiki.lint`` holds the rules over texts.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.git_store import GitStore
from store.models import Claim, Source
from wiki.lint import Finding, lint_pages


def unquoted_claims(session: Session) -> list[str]:
    """Ids of claims whose stored quote does not occur verbatim in their source's text."""
    texts = dict(session.execute(select(Source.id, Source.text)).all())
    bad = []
    for cid, source_id, quote in session.execute(select(Claim.id, Claim.source_id, Claim.quote)):
        text = texts.get(source_id)
        if text is None or quote not in text:
            bad.append(cid)
    return bad


def lint_wiki(session: Session, store: GitStore, *, min_claims: int = 2) -> list[Finding]:
    """Every finding for the wiki at HEAD, sorted (errors first)."""
    paths = [p for p in store.list("wiki/") if p.endswith(".md")]
    blobs = store.read_many(paths)
    pages = {p: r.content.decode("utf-8", "replace") for p, r in blobs.items() if r.content is not None}
    claim_ids = set(session.scalars(select(Claim.id)))
    return lint_pages(pages, claim_ids, unquoted=unquoted_claims(session), min_claims=min_claims)


def summarise(findings: list[Finding]) -> dict[str, object]:
    """Counts by severity and kind, for ``--json`` output."""
    by_kind: dict[str, dict[str, int]] = {"error": {}, "warning": {}}
    for f in findings:
        by_kind[f.severity][f.kind] = by_kind[f.severity].get(f.kind, 0) + 1
    return {
        "errors": sum(by_kind["error"].values()),
        "warnings": sum(by_kind["warning"].values()),
        "by_kind": by_kind,
        "findings": [f.__dict__ for f in findings],
    }
