"""Entity resolution: a bounded cascade from a mention to an entity (DESIGN section 3).

1. normalised name or alias -> the entity (unless its description clearly says it is another thing);
2. fuzzy string match on names (rapidfuzz) -> merge when nearly identical, else ambiguous;
3. embedding neighbours of "name: description" above a threshold -> ambiguous;
4. one batched model judgment (``synth.prompts.resolve``) for the ambiguous rest;
5. otherwise a new entity.

Names that differ in digits, dates or versions never merge automatically ("Kubernetes 1.24" vs
"Kubernetes 1.25"). Same name, different thing (two "Cathedral of Saint Augustine") is a new entity,
not a contradiction: when both descriptions exist and their embeddings disagree, the model decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz, process
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Alias, Entity
from synth.grounding import digit_signature, normalise
from synth.prompts.extract import ExtractedEntity
from wiki.slug import slugify, unique_slug

FUZZY_MERGE = 96.0
FUZZY_ASK = 88.0
EMBED_ASK = 0.86
SAME_NAME_DIFFERENT = 0.30  # description cosine below which a same-name match is questioned
MAX_CANDIDATES = 4


@dataclass
class MentionPlan:
    """How one extracted entity maps onto the ledger."""

    mention: ExtractedEntity
    entity_id: int | None = None  # decided
    candidates: list[int] = field(default_factory=list)  # ambiguous: ask the model
    embedding: np.ndarray | None = None


def _vec(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32)


def _digits_ok(a: str, b: str) -> bool:
    return digit_signature(a) == digit_signature(b)


class Resolver:
    """Resolves mentions against the entities in the ledger; one instance per transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        rows = session.execute(select(Entity.id, Entity.name, Entity.norm_name, Entity.embedding)).all()
        self.names: dict[int, str] = {r.id: r.name for r in rows}
        self.embeddings: dict[int, np.ndarray | None] = {r.id: _vec(r.embedding) for r in rows}
        self.by_norm: dict[str, set[int]] = {}
        for r in rows:
            self.by_norm.setdefault(r.norm_name, set()).add(r.id)
        for entity_id, norm in session.execute(select(Alias.entity_id, Alias.norm)).all():
            self.by_norm.setdefault(norm, set()).add(entity_id)

    def plan(self, mention: ExtractedEntity, embedding: np.ndarray | None) -> MentionPlan:
        plan = MentionPlan(mention, embedding=embedding)
        names = [mention.name, *mention.aliases]
        exact: set[int] = set()
        for n in names:
            for eid in self.by_norm.get(normalise(n), ()):
                if _digits_ok(n, self.names[eid]):
                    exact.add(eid)
        if exact:
            close = [e for e in exact if not self._descriptions_disagree(embedding, e)]
            if len(close) == 1 and len(exact) == 1:
                plan.entity_id = close[0]
            else:
                plan.candidates = sorted(exact)[:MAX_CANDIDATES]
            return plan
        if self.names:
            choices = {eid: normalise(name) for eid, name in self.names.items()}
            hits = process.extract(normalise(mention.name), choices, scorer=fuzz.token_sort_ratio, limit=5)
            fuzzy = [(eid, score) for _, score, eid in hits if _digits_ok(mention.name, self.names[eid])]
            best = [eid for eid, score in fuzzy if score >= FUZZY_MERGE]
            if len(best) == 1 and not self._descriptions_disagree(embedding, best[0]):
                plan.entity_id = best[0]
                return plan
            plan.candidates = [eid for eid, score in fuzzy if score >= FUZZY_ASK][:MAX_CANDIDATES]
        if embedding is not None:
            near = self._neighbours(embedding, mention.name)
            for eid in near:
                if eid not in plan.candidates:
                    plan.candidates.append(eid)
            plan.candidates = plan.candidates[:MAX_CANDIDATES]
        return plan

    def _descriptions_disagree(self, embedding: np.ndarray | None, entity_id: int) -> bool:
        other = self.embeddings.get(entity_id)
        if embedding is None or other is None or other.shape != embedding.shape:
            return False
        return float(np.dot(embedding, other)) < SAME_NAME_DIFFERENT

    def _neighbours(self, embedding: np.ndarray, name: str) -> list[int]:
        scored = []
        for eid, vec in self.embeddings.items():
            if vec is None or vec.shape != embedding.shape or not _digits_ok(name, self.names[eid]):
                continue
            score = float(np.dot(embedding, vec))
            if score >= EMBED_ASK:
                scored.append((score, eid))
        return [eid for _, eid in sorted(scored, reverse=True)[:MAX_CANDIDATES]]

    def create(self, mention: ExtractedEntity, embedding: np.ndarray | None) -> Entity:
        """A new entity with a slug unique within its type, registered for later mentions."""
        base = slugify(mention.name)
        taken = set(
            self.session.scalars(
                select(Entity.slug).where(Entity.type == mention.type, Entity.slug.like(f"{base}%"))
            )
        )
        entity = Entity(
            name=mention.name.strip()[:300],
            norm_name=normalise(mention.name)[:300],
            type=mention.type,
            slug=unique_slug(base, taken),
            description=mention.description.strip()[:1000],
            embedding=None if embedding is None else embedding.astype(np.float32).tobytes(),
            revision=0,
        )
        self.session.add(entity)
        self.session.flush()
        self.names[entity.id] = entity.name
        self.embeddings[entity.id] = embedding
        self.by_norm.setdefault(entity.norm_name, set()).add(entity.id)
        self.add_aliases(entity.id, mention.aliases)
        return entity

    def add_aliases(self, entity_id: int, aliases: Sequence[str]) -> None:
        existing = set(self.session.scalars(select(Alias.norm).where(Alias.entity_id == entity_id)))
        own = normalise(self.names[entity_id])
        for alias in aliases:
            norm = normalise(alias)[:300]
            if not norm or norm == own or norm in existing or not _digits_ok(alias, self.names[entity_id]):
                continue
            self.session.add(Alias(entity_id=entity_id, alias=alias.strip()[:300], norm=norm))
            existing.add(norm)
            self.by_norm.setdefault(norm, set()).add(entity_id)
        self.session.flush()
