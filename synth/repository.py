"""The flows' ledger queries: reads only, no commits, no model calls (CONVENTIONS: `repository.py`).

Flows decide; this module fetches. Each function takes an open session and returns ORM rows or plain
values, so a flow's transaction boundaries stay where the flow draws them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from store.models import Claim, ClaimPair, Entity, Source


def entity_claims(session: Session, entity_id: int, statuses: Iterable[str]) -> list[Claim]:
    """The entity's claims in ``statuses``, in id order (stable, independent of arrival)."""
    rows = session.scalars(select(Claim).where(Claim.entity_id == entity_id, Claim.status.in_(tuple(statuses))))
    return sorted(rows, key=lambda c: c.id)


def sources_by_id(session: Session, source_ids: Iterable[str]) -> dict[str, Source]:
    return {s.id: s for s in session.scalars(select(Source).where(Source.id.in_(set(source_ids))))}


def status_line(session: Session, source_id: str) -> str | None:
    """A source's own status line: the value of its status claim about a document entity."""
    return session.scalar(
        select(Claim.value)
        .join(Entity, Entity.id == Claim.entity_id)
        .where(Claim.source_id == source_id, Claim.attr_key == "status", Entity.type == "documents")
        .order_by(Claim.id)
        .limit(1)
    )


def entity_pairs(session: Session, entity_id: int) -> list[ClaimPair]:
    """Every judged (or waiting) claim pair of the entity."""
    return list(session.scalars(select(ClaimPair).where(ClaimPair.entity_id == entity_id)))


def pairs_touching(session: Session, claim_ids: set[str]) -> list[ClaimPair]:
    """The pairs that involve any of ``claim_ids`` (diagnostics, the eval)."""
    if not claim_ids:
        return []
    return list(session.scalars(
        select(ClaimPair).where(or_(ClaimPair.claim_new.in_(claim_ids), ClaimPair.claim_old.in_(claim_ids)))
    ))
