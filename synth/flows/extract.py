"""The extract flow: source text -> model -> grounded claims in the ledger -> render jobs.

Phases keep database transactions short (SQLite holds a write lock for a whole transaction), and no
model call ever runs inside one:

1. read the source (short transaction);
2. ask the model, chunk by chunk (no transaction);
3. grounding: claims whose quote is not in the source are rejected and counted; entities whose name
   does not occur in the source are dropped (the model never chooses pages the text does not name);
4. resolve entities (plan in a read transaction, one batched model call for the ambiguous ones);
5. one write transaction: entities, aliases, claims (idempotent by key), links, revisions, source
   status, and the render and catalog jobs. The caller dispatches the jobs after commit.

Every step is idempotent, so a crash anywhere means the job runs again and converges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.faults import crash_point
from store.jobs import enqueue_job
from store.models import Claim, Entity, Job, Link, Source
from synth import slots
from synth.deps import SynthDeps
from synth.errors import OutputTruncated
from synth.flows import ExtractPayload
from synth.grounding import SourceText, claim_id, claim_key, normalise, value_in
from synth.prompts import extract as extract_prompt
from synth.prompts import resolve as resolve_prompt
from synth.prompts.extract import ExtractedClaim, ExtractedEntity, Extraction
from synth.resolve import MentionPlan, Resolver
from synth.text import halve, split_chunks

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class GroundedClaim:
    """A claim whose quote was located in the source: the source's span and how it matched."""

    claim: ExtractedClaim
    start: int
    end: int
    how: str
    value: slots.Value | None  # normalized value (None: no value, or the claim has no attribute)
    attr_key: str | None


@dataclass
class Findings:
    """What the model found, after grounding."""

    title: str = ""
    summary: str = ""
    entities: dict[str, ExtractedEntity] = field(default_factory=dict)  # by normalised name
    claims: list[GroundedClaim] = field(default_factory=list)
    relations: list[tuple[str, str, str]] = field(default_factory=list)  # from norm, to norm, relation
    rejections: dict[str, int] = field(default_factory=lambda: {"quote": 0, "value": 0, "entity": 0})

    @property
    def rejected(self) -> int:
        return sum(self.rejections.values())
    assisted_by: str = ""


MAX_SPLITS = 2  # a chunk whose answer is cut off is halved, and each half again, at most this deep
MIN_SPLIT_CHARS = 600  # below this a cut answer is asked once more, shorter, instead of halving the text


def ask_model(deps: SynthDeps, job: Job, source_id: str, text: str) -> list[tuple[Extraction, str]]:
    chunks = split_chunks(text, deps.chunk_tokens)
    answers = []
    for i, chunk in enumerate(chunks, start=1):
        answers += _ask_chunk(deps, job, source_id, chunk, i, len(chunks))
    return answers


def _ask_chunk(
    deps: SynthDeps, job: Job, source_id: str, chunk: str, part: int, parts: int, depth: int = 0
) -> list[tuple[Extraction, str]]:
    """One chunk's answer; a chunk with more claims than the output limit holds is read in halves.

    A dense passage can need more output than ``max_tokens`` allows (MoJ ADR 036: 1,000 tokens of text,
    2,200 of answer, its quotes carrying long links).
    Asking the same text "shorter" makes a small model drop claims or cut again; two halves each fit.
    """
    halves = halve(chunk) if depth < MAX_SPLITS and len(chunk) >= MIN_SPLIT_CHARS else [chunk]
    messages = extract_prompt.build_messages(extract_prompt.ExtractContext(chunk, part, parts))
    try:
        done = deps.client.complete(
            "extract", messages, Extraction, job_id=job.id, source_id=source_id, shorten=len(halves) < 2
        )
    except OutputTruncated:
        if len(halves) < 2:
            raise
        log.info("extract: answer for a %d-character chunk of %s was cut off; reading it in halves",
                 len(chunk), source_id[:12])
        return [a for h in halves for a in _ask_chunk(deps, job, source_id, h, part, parts, depth + 1)]
    return [(done.value, done.assisted_by)]


def ground(text: str, answers: list[tuple[Extraction, str]]) -> Findings:
    """Keep only what the source supports: real quotes, names that occur in the text."""
    src = SourceText(text)
    out = Findings()
    for answer, assisted_by in answers:
        out.assisted_by = out.assisted_by or assisted_by
        out.title = out.title or answer.title.strip()
        out.summary = out.summary or answer.summary.strip()
        for ent in answer.entities:
            names = [ent.name, *ent.aliases]
            if not any(src.contains_name(n) for n in names):
                continue
            key = normalise(ent.name)
            if key in out.entities:
                known = out.entities[key]
                known.aliases = sorted({*known.aliases, *ent.aliases})
            else:
                out.entities[key] = ent.model_copy(
                    update={"aliases": [a for a in ent.aliases if src.contains_name(a)]}
                )
    alias_to_key = {normalise(a): k for k, e in out.entities.items() for a in [e.name, *e.aliases]}
    seen: set[tuple[str, str]] = set()
    for answer, _ in answers:
        for claim in answer.claims:
            if not claim.text.strip():
                out.rejections["quote"] += 1
                continue
            span = src.find(claim.quote)
            if span is None:
                out.rejections["quote"] += 1
                continue
            owner = alias_to_key.get(normalise(claim.entity))
            if owner is None and len(normalise(claim.entity)) >= 3 and src.contains_name(claim.entity):
                # a name the source does use, that the model forgot to list among the entities
                owner = normalise(claim.entity)
                out.entities[owner] = ExtractedEntity(name=claim.entity.strip(), type="other", aliases=[],
                                                      description="")
                alias_to_key[owner] = owner
            if owner is None:
                out.rejections["entity"] += 1
                continue
            attr_key = slots.attribute_key(claim.attribute)
            value = slots.normalize_value(claim.value, attr_key) if attr_key else None
            if value is not None and claim.value is not None:
                span_text = text[span.start:span.end]
                if not (value_in(span_text, claim.value) or slots.value_matches_span(span_text, value)):
                    # the value is not in the quoted span: the value is rejected (counted), the claim stays
                    # on its real quote as a free-text claim, compared with its lexical neighbours
                    out.rejections["value"] += 1
                    value, attr_key = None, None
            ident = (owner, normalise(claim.text))
            if ident in seen:
                continue
            seen.add(ident)
            out.claims.append(GroundedClaim(claim.model_copy(update={"entity": owner}), span.start, span.end,
                                            span.how, value, attr_key))
        for rel in answer.relations:
            a, b = alias_to_key.get(normalise(rel.from_)), alias_to_key.get(normalise(rel.to))
            if a and b and a != b and src.find(rel.quote) is not None:
                out.relations.append((a, b, rel.relation.strip()[:200]))
    return out


def _embed_mentions(deps: SynthDeps, entities: dict[str, ExtractedEntity]) -> dict[str, np.ndarray]:
    if deps.embedder is None or not entities:
        return {}
    keys = list(entities)
    texts = [f"{entities[k].name}: {entities[k].description}" for k in keys]
    vectors = deps.embedder.embed(texts)
    return {k: np.asarray(vectors[i], dtype=np.float32) for i, k in enumerate(keys)}


def _resolver_mentions(plans: dict[str, MentionPlan], session: Session) -> list[tuple[str, resolve_prompt.Mention]]:
    """The ambiguous mentions with their candidates, read while the session is open."""
    out = []
    for key, p in plans.items():
        if p.entity_id is not None or not p.candidates:
            continue
        by_id = {e.id: e for e in session.scalars(select(Entity).where(Entity.id.in_(p.candidates)))}
        cands = tuple(
            resolve_prompt.Candidate(by_id[c].name, by_id[c].type, by_id[c].description)
            for c in p.candidates
            if c in by_id
        )
        out.append((key, resolve_prompt.Mention(p.mention.name, p.mention.type, p.mention.description, cands)))
    return out


def _ask_resolver(
    deps: SynthDeps, job: Job, source_id: str, plans: dict[str, MentionPlan],
    ambiguous: list[tuple[str, resolve_prompt.Mention]],
) -> dict[str, int | None]:
    """One batched model judgment for the ambiguous mentions: mention key -> entity id or None."""
    if not ambiguous:
        return {}
    ctx = resolve_prompt.ResolveContext(tuple(m for _, m in ambiguous))
    done = deps.client.complete(
        "resolve",
        resolve_prompt.build_messages(ctx),
        resolve_prompt.Resolution,
        job_id=job.id,
        source_id=source_id,
        validation_context=resolve_prompt.validation_context(ctx),
    )
    decided: dict[str, int | None] = {key: None for key, _ in ambiguous}
    for d in done.value.decisions:
        if 1 <= d.mention <= len(ambiguous) and d.candidate is not None:
            key = ambiguous[d.mention - 1][0]
            cands = plans[key].candidates
            if 1 <= d.candidate <= len(cands):
                decided[key] = cands[d.candidate - 1]
    return decided


def _replace_previous(session: Session, deps: SynthDeps, src: Source, previous_id: str, jobs: list[Job]) -> set[int]:
    """A new version replaces every older one (``synth.lifecycle.replace_older_versions``): their claims
    are retracted in this transaction (what the new version still says was just added again under it)."""
    from synth.lifecycle import replace_older_versions

    touched, page_jobs = replace_older_versions(session, src, previous_id, max_attempts=deps.max_attempts)
    jobs.extend(page_jobs)
    return touched


def _short(value: str | None, limit: int = 40) -> str | None:
    value = (value or "").strip()
    return value[:limit] or None


class AttributeKeys:
    """Maps a claim's attribute key onto a key its entity already uses when the two mean the same.

    The synonym table (``synth.slots``) catches the common cases; what is left is compared by embedding
    similarity of the attribute phrases with the keys of the entity's other claims (``MIN_SIMILARITY``),
    so "headcount" and "number of employees" on one company become one slot. Without an embedder the
    normalized key stands as it is.
    """

    MIN_SIMILARITY = 0.8

    def __init__(self, session: Session, embedder: Any | None) -> None:
        self.session = session
        self.embedder = embedder
        self._known: dict[int, set[str]] = {}
        self._vectors: dict[str, np.ndarray] = {}

    def _keys_of(self, entity_id: int) -> set[str]:
        if entity_id not in self._known:
            self._known[entity_id] = {
                k for k in self.session.scalars(
                    select(Claim.attr_key).where(Claim.entity_id == entity_id, Claim.attr_key.is_not(None)).distinct()
                ) if k
            }
        return self._known[entity_id]

    def _vector(self, phrase: str) -> np.ndarray:
        if phrase not in self._vectors:
            assert self.embedder is not None
            self._vectors[phrase] = np.asarray(self.embedder.embed([phrase])[0], dtype=np.float32)
        return self._vectors[phrase]

    def resolve(self, entity_id: int, key: str | None, attribute: str | None) -> str | None:
        if key is None:
            return None
        known = self._keys_of(entity_id)
        if key in known or not known or self.embedder is None:
            known.add(key)
            return key
        mine = self._vector(key)
        best, score = None, -1.0
        for other in sorted(known):
            sim = float(np.dot(mine, self._vector(other)))
            if sim > score:
                best, score = other, sim
        chosen = best if best is not None and score >= self.MIN_SIMILARITY else key
        known.add(chosen)
        return chosen


def run_extract(deps: SynthDeps, job: Job, payload: ExtractPayload) -> list[int]:
    """Run one extract job to the ledger; returns the ids of the jobs to dispatch after commit."""
    source_id = payload.source_id
    with deps.session_factory() as session:
        src = session.get(Source, source_id)
        if src is None or src.status in ("retracted", "replaced") or src.text is None:
            return []
        text = src.text
    answers = ask_model(deps, job, source_id, text)
    crash_point("after_model")  # crash tests: the model answered, nothing written
    found = ground(text, answers)
    warning = None
    if not found.claims and text.strip():
        # Not a failure: the text stays searchable (source page, chunk index) and the source ends
        # `done`; the warning says why it adds no facts to the entity pages.
        why = ", ".join(f"{n} {reason}" for reason, n in found.rejections.items() if n) or "none given"
        warning = (
            f"no facts added: the model found no claims with a real quote in this {len(text)}-character "
            f"source (rejected by the grounding check: {why}); its text is still searchable"
        )
        log.info("source %s: %s", source_id[:12], warning)
        found.entities, found.relations = {}, []  # no entity is made from a source that says nothing of it
    vectors = _embed_mentions(deps, found.entities)
    with deps.session_factory() as session:
        resolver = Resolver(session)
        plans = {k: resolver.plan(e, vectors.get(k)) for k, e in found.entities.items()}
        ambiguous = _resolver_mentions(plans, session)
    decided = _ask_resolver(deps, job, source_id, plans, ambiguous)
    with deps.session_factory() as session, session.begin():
        return _apply(session, deps, job, source_id, found, vectors, decided, payload.previous_id, warning)


def _apply(
    session: Session,
    deps: SynthDeps,
    job: Job,
    source_id: str,
    found: Findings,
    vectors: dict[str, np.ndarray],
    decided: dict[str, int | None],
    previous_id: str | None,
    warning: str | None = None,
) -> list[int]:
    src = session.get(Source, source_id)
    if src is None or src.status in ("retracted", "replaced"):
        return []
    resolver = Resolver(session)  # re-plan inside the write transaction: others may have added entities
    ids: dict[str, int] = {}
    for key, mention in found.entities.items():
        plan = resolver.plan(mention, vectors.get(key))
        entity_id = plan.entity_id
        if entity_id is None and key in decided and decided[key] in plan.candidates:
            entity_id = decided[key]
        if entity_id is None:
            entity_id = resolver.create(mention, vectors.get(key)).id
        else:
            resolver.add_aliases(entity_id, [mention.name, *mention.aliases])
        ids[key] = entity_id
    touched: set[int] = set()
    keys = AttributeKeys(session, deps.embedder)
    for g in found.claims:
        claim = g.claim
        entity_id = ids[claim.entity]
        key = claim_key(source_id, claim.text)
        cid = claim_id(entity_id, key)
        if session.get(Claim, cid) is not None:
            continue
        attr_key = keys.resolve(entity_id, g.attr_key, claim.attribute)
        session.add(
            Claim(
                id=cid,
                entity_id=entity_id,
                source_id=source_id,
                key=key,
                text=claim.text.strip()[:2000],
                quote=src.text[g.start:g.end] if src.text else claim.quote,
                span_start=g.start,
                span_end=g.end,
                match=g.how,
                valid_from=_short(claim.valid_from),
                valid_to=_short(claim.valid_to),
                attribute=_short(claim.attribute, 200) if attr_key else None,
                value=(claim.value or "")[:2000] or None if attr_key else None,
                as_of=_short(claim.as_of),
                attr_key=attr_key,
                value_norm=g.value.norm if g.value and attr_key else None,
                value_type=g.value.type if g.value and attr_key else None,
                as_of_norm=slots.normalize_date(claim.as_of) or slots.normalize_date(claim.valid_from),
                status="active",
                job_id=job.id,
            )
        )
        touched.add(entity_id)
    for a, b, relation in found.relations:
        exists = session.scalar(
            select(Link.id).where(
                Link.from_entity_id == ids[a],
                Link.to_entity_id == ids[b],
                Link.relation == relation,
                Link.source_id == source_id,
            )
        )
        if exists is None and relation:
            session.add(Link(from_entity_id=ids[a], to_entity_id=ids[b], relation=relation, source_id=source_id))
            touched.update((ids[a], ids[b]))
    session.flush()
    jobs: list[Job] = []
    if previous_id:
        touched |= _replace_previous(session, deps, src, str(previous_id), jobs)
    src.title = (found.title or src.title)[:500]
    src.summary = found.summary[:4000]
    src.claims_rejected = found.rejected
    src.rejections = dict(found.rejections)
    src.status = "extracted" if touched else "done"
    src.error = None
    src.warning = warning
    for entity_id in sorted(touched):
        entity = session.get(Entity, entity_id)
        assert entity is not None
        entity.revision += 1
        jobs.append(
            enqueue_job(
                session, "render", f"render:{entity_id}", {"entity_id": entity_id},
                entity_id=entity_id, max_attempts=deps.max_attempts, requeue_finished=True,
            )
        )
    jobs.append(
        enqueue_job(
            session, "source_page", f"source_page:{source_id}",
            {"source_id": source_id, "assisted_by": found.assisted_by},
            source_id=source_id, max_attempts=deps.max_attempts, requeue_finished=True,
        )
    )
    session.flush()
    log.info("extracted %s: %d claims, %d rejected, %d entities", source_id[:12], len(found.claims),
             found.rejected, len(touched))
    return [j.id for j in jobs]
