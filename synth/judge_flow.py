"""Judging new claims against the nearby active claims of the same entity (DESIGN section 1).

The candidate set is bounded: for each new claim, the few most similar active claims from *other*
sources (string similarity of the normalised texts). Claims with no candidate are judged without a
model call. Outcomes change statuses only, never text:

- ``duplicate``: the new claim corroborates an existing one; it is kept as ``duplicate`` of it (its
  footnote is shown beside the original's) and becomes active again if the original is retracted;
- ``supersedes``: the existing claim becomes ``superseded`` (shown under "History", not as a dispute);
- ``disputes``: both become ``disputed`` and a ``Contradiction`` row is opened;
- ``unrelated``: nothing changes.

Succession guard: a ``disputes`` between two sources one of which links to the other by file name (an ADR's
"Superseded by [036](036-multi-cluster.md)", a later decision citing the one it replaces) is applied
as ``supersedes``: documents that name each other form one line of revisions, not independent
witnesses, so the later one (the new claim; claims are judged against those that entered the ledger
before them) replaces the earlier. Independent sources that disagree stay disputes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import unquote

from rapidfuzz import fuzz
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Claim, Contradiction, Entity, Source
from synth.deps import SynthDeps
from synth.errors import InvalidAnswer
from synth.grounding import normalise
from synth.prompts import judge as judge_prompt

log = logging.getLogger(__name__)

NEIGHBOURS = 4
MIN_SIMILARITY = 35.0
MAX_NEW_PER_CALL = 10
MIN_NAME_CHARS = 6
LINKED = "one source links to the other, so the later one revises the earlier"


@dataclass(frozen=True)
class JudgeBatch:
    entity: str
    new: list[judge_prompt.ClaimRef]
    existing: list[judge_prompt.ClaimRef]


def _ref(claim: Claim, observed: str | None, source: str | None = None) -> judge_prompt.ClaimRef:
    return judge_prompt.ClaimRef(claim.id, claim.text, claim.valid_from, claim.valid_to, observed, source)


def source_names(origin: str) -> set[str]:
    """The names a document may be linked by: its file name and its stem, case-folded.

    Only distinctive names count: the stem is at least ``MIN_NAME_CHARS`` long and holds a digit, ``-``
    or ``_`` (``036-multi-cluster``), so ``notes.md`` or ``README.md`` never "link" two documents.
    """
    base = origin.replace("\\", "/").rsplit("/", 1)[-1].strip().casefold()
    stem = base.rsplit(".", 1)[0] if "." in base else base
    if len(stem) < MIN_NAME_CHARS or not re.search(r"[\d_-]", stem):
        return set()
    return {base, stem}


def names_source(text: str | None, origin: str) -> bool:
    """Whether ``text`` names the document that arrived as ``origin`` (a link or a file name)."""
    if not text:
        return False
    folded = unquote(text).casefold()
    return any(
        re.search(r"(?<![\w.-])" + re.escape(name) + r"(?![\w-])", folded) for name in source_names(origin)
    )


def linked(a: Source, b: Source) -> bool:
    """Whether either source names the other (see the module docstring: succession guard)."""
    return a.id != b.id and (names_source(a.text, b.origin) or names_source(b.text, a.origin))


def plan_batches(session: Session, entity: Entity) -> tuple[list[JudgeBatch], list[str]]:
    """Batches that need the model, and ids of new claims that have no candidate (judged as unrelated)."""
    claims = session.scalars(
        select(Claim).where(Claim.entity_id == entity.id, Claim.status.in_(("active", "disputed")))
    ).all()
    observed: dict[str, str] = {}
    names: dict[str, str] = {}
    for sid, created, origin in session.execute(
        select(Source.id, Source.created_at, Source.origin).where(Source.id.in_({c.source_id for c in claims}))
    ):
        observed[sid] = created.isoformat()
        names[sid] = origin.replace("\\", "/").rsplit("/", 1)[-1]
    order = {c.id: (c.created_at, c.id) for c in claims}
    new = [c for c in claims if not c.judged]
    lonely: list[str] = []
    pairs: list[tuple[Claim, list[Claim]]] = []
    for c in new:
        text = normalise(c.text)
        # Existing = every claim of another source that came before this one, judged yet or not: sources
        # that arrive together (before the entity's first render) are compared with each other too.
        earlier = [o for o in claims if o.source_id != c.source_id and order[o.id] < order[c.id]]
        scored = sorted(
            ((fuzz.token_set_ratio(text, normalise(o.text)), o) for o in earlier),
            key=lambda t: (-t[0], t[1].id),
        )
        near = [o for score, o in scored[:NEIGHBOURS] if score >= MIN_SIMILARITY]
        if near:
            pairs.append((c, near))
        else:
            lonely.append(c.id)
    batches = []
    for i in range(0, len(pairs), MAX_NEW_PER_CALL):
        chunk = pairs[i : i + MAX_NEW_PER_CALL]
        existing: dict[str, Claim] = {}
        for _, near in chunk:
            existing.update({o.id: o for o in near})
        batches.append(
            JudgeBatch(
                entity.name,
                [_ref(c, observed.get(c.source_id), names.get(c.source_id)) for c, _ in chunk],
                [
                    _ref(o, observed.get(o.source_id), names.get(o.source_id))
                    for o in sorted(existing.values(), key=lambda o: o.id)
                ],
            )
        )
    return batches, lonely


def ask(deps: SynthDeps, batch: JudgeBatch, job_id: int) -> list[judge_prompt.JudgeOutcome]:
    """The model's outcomes for one batch; none when its answer stays invalid after the client's repair.

    An answer that names claims it was not given (a new claim as ``other``) is repaired once by the
    client; if it is still invalid the batch is left as it is (every claim stays active, as with no
    candidate), because a deterministic model gives the same answer on every retry and a render that
    can never finish would keep the source from ``done`` forever.
    """
    ctx = judge_prompt.JudgeContext(batch.entity, tuple(batch.new), tuple(batch.existing))
    try:
        done = deps.client.complete(
            "judge",
            judge_prompt.build_messages(ctx),
            judge_prompt.Judgement,
            job_id=job_id,
            validation_context=judge_prompt.validation_context(ctx),
        )
    except InvalidAnswer as exc:
        log.warning("judge answer invalid for %s, its claims stay as they are: %s", batch.entity, exc)
        return []
    return list(done.value.outcomes)


def apply_outcomes(
    session: Session, entity_id: int, judged_ids: list[str], outcomes: list[judge_prompt.JudgeOutcome]
) -> int:
    """Apply outcomes to claims still in the state they were judged in; returns contradictions opened."""
    opened = 0
    for o in outcomes:
        new = session.get(Claim, o.claim)
        other = session.get(Claim, o.other) if o.other else None
        if new is None or new.entity_id != entity_id or new.status != "active" or new.judged:
            continue
        outcome, reason = o.outcome, o.reason
        if other is None or other.entity_id != entity_id or other.status not in ("active", "disputed"):
            new.judgement = f"{outcome}: {reason}"[:2000]
            continue
        if outcome == "disputes" and _sources_linked(session, new, other):
            outcome, reason = "supersedes", f"{LINKED} (the judge said: {reason})"
        new.judgement = f"{outcome}: {reason}"[:2000]
        if outcome == "duplicate":
            new.status = "duplicate"
            new.superseded_by = other.id
        elif outcome == "supersedes":
            other.status = "superseded"
            other.superseded_by = new.id
        elif outcome == "disputes":
            new.status = "disputed"
            other.status = "disputed"
            a, b = sorted((new.id, other.id))
            exists = session.scalar(
                select(Contradiction.id).where(Contradiction.claim_a == a, Contradiction.claim_b == b)
            )
            if exists is None:
                session.add(Contradiction(entity_id=entity_id, claim_a=a, claim_b=b, reason=reason[:2000]))
                opened += 1
    for cid in judged_ids:
        claim = session.get(Claim, cid)
        if claim is not None:
            claim.judged = True
    session.flush()
    return opened


def _sources_linked(session: Session, a: Claim, b: Claim) -> bool:
    sa, sb = session.get(Source, a.source_id), session.get(Source, b.source_id)
    return sa is not None and sb is not None and linked(sa, sb)
