"""A person's review of a dispute: keep one side, keep both, or dismiss the flag.

The judge opens a ``Contradiction`` when two sources disagree; it stays open until a side is retracted
or someone decides. A decision is a ledger change in one transaction:

- ``keep`` (with the claim to keep): the other side becomes ``superseded`` by it, so it moves to the
  page's History with its footnote and comes back if the kept claim's source is ever retracted;
- ``both_valid``: both stand (for example values at different times, or of different things);
- ``dismiss``: the judge was wrong: the claims do not disagree.

Either way the dispute is ``resolved`` with the decision, the note, who decided (an API key's name or
a user) and when; a side left in no other open dispute is ``active`` again. The entity's page is
re-rendered, showing the decision where the conflict was, and the render's commit carries a
``Lore-Review`` trailer naming the reviewer. A resolved dispute is not reported stale by the lint, and
a later source that disagrees again opens a new dispute: it is a new pair of claims.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from store.jobs import enqueue_job
from store.models import Claim, Contradiction, Entity, utcnow
from synth.errors import SynthError

DECISIONS = ("keep", "both_valid", "dismiss")
MAX_NOTE = 2000
MAX_REVIEWER = 200


class DisputeError(SynthError):
    """A dispute cannot be resolved as asked."""


class DisputeNotFound(DisputeError):
    """No dispute has this id."""


class DisputeClosed(DisputeError):
    """The dispute was already resolved (by a person, or because a side was retracted)."""


class InvalidDecision(DisputeError):
    """The decision is unknown, or ``keep`` names no claim of the dispute."""


@dataclass(frozen=True)
class Resolution:
    """What a decision did: the dispute, the claims whose status changed, and the jobs to dispatch."""

    dispute_id: int
    decision: str
    entity_id: int
    kept: str | None
    changed: dict[str, str]  # claim id -> new status
    job_ids: tuple[int, ...]


def _still_disputed(session: Session, claim_id: str) -> bool:
    return (
        session.scalar(
            select(Contradiction.id).where(
                Contradiction.status == "open",
                or_(Contradiction.claim_a == claim_id, Contradiction.claim_b == claim_id),
            )
        )
        is not None
    )


def resolve_dispute(
    session: Session,
    dispute_id: int,
    decision: str,
    *,
    reviewer: str,
    claim: str | None = None,
    note: str = "",
    max_attempts: int = 5,
) -> Resolution:
    """Record a decision on an open dispute and enqueue the entity's render; the caller commits, then
    dispatches ``job_ids``.

    Raises:
        DisputeNotFound: no dispute ``dispute_id``.
        DisputeClosed: it is not open any more.
        InvalidDecision: an unknown decision, ``keep`` without one of the dispute's two claims, or a
            claim given with another decision.
    """
    if decision not in DECISIONS:
        raise InvalidDecision(f"unknown decision {decision!r}; expected one of {', '.join(DECISIONS)}")
    dispute = session.get(Contradiction, dispute_id)
    if dispute is None:
        raise DisputeNotFound(f"no dispute {dispute_id}")
    if dispute.status != "open":
        by = f" by {dispute.resolved_by}" if dispute.resolved_by else ""
        raise DisputeClosed(f"dispute {dispute_id} is already {dispute.status}{by}")
    sides = (dispute.claim_a, dispute.claim_b)
    if decision == "keep":
        if claim not in sides:
            raise InvalidDecision(f"'keep' needs the claim to keep: {sides[0]} or {sides[1]}")
    elif claim:
        raise InvalidDecision(f"a claim is only given with 'keep', not with {decision!r}")
    now = utcnow()
    dispute.status = "resolved"
    dispute.decision = decision
    dispute.kept_claim = claim if decision == "keep" else None
    dispute.note = (note or "").strip()[:MAX_NOTE] or None
    dispute.resolved_by = " ".join((reviewer or "").split())[:MAX_REVIEWER] or "anonymous"  # one line: a trailer
    dispute.resolved_at = now
    dispute.review_commit = None
    session.flush()
    changed: dict[str, str] = {}
    for claim_id in sides:
        row = session.get(Claim, claim_id)
        if row is None or row.status in ("retracted", "superseded"):
            continue
        if decision == "keep" and claim_id != claim:
            row.status, row.superseded_by = "superseded", claim
            row.judgement = f"superseded by {claim} on review by {dispute.resolved_by}"[:2000]
        elif row.status == "disputed" and not _still_disputed(session, claim_id):
            row.status = "active"
        else:
            continue
        changed[claim_id] = row.status
    entity = session.get(Entity, dispute.entity_id)
    jobs: list[int] = []
    if entity is not None:
        entity.revision += 1
        jobs.append(
            enqueue_job(
                session, "render", f"render:{entity.id}", {"entity_id": entity.id},
                entity_id=entity.id, max_attempts=max_attempts, requeue_finished=True,
            ).id
        )
    session.flush()
    return Resolution(dispute.id, decision, dispute.entity_id, dispute.kept_claim, changed, tuple(jobs))
