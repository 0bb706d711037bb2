"""Judging new claims: candidates by code, confirmation by the model (DESIGN section 1).

A new claim is compared only with the active (or disputed) claims of the same entity from *other*
sources, and only where both answer the same slot (``attr_key``):

- equal values (``synth.slots.same_value``) are a ``duplicate``: no model call;
- a status line that names the other document (document series, below) and a changing attribute with
  two different dates are ``supersedes`` in that direction: code decides, no model call;
- anything else with different values (an attribute that cannot change, values without dates, equal
  dates) is a dispute *candidate*, which the model reads pairwise (``synth.prompts.judge``) and
  :func:`verdict` maps to ``duplicate | supersedes | disputes | unrelated``;
- claims without an attribute fall back to their closest lexical neighbours (``MIN_LEXICAL``), and a
  near copy of a claim (``MIN_NEAR_COPY``) is compared even when the model named its attribute otherwise;
  both are judged the same way.

**Ingest order never decides anything**: every pair is judged once, whichever claim arrived first, the
model never sees arrival times, and the direction of a supersession comes from the documents' dates or
status lines. Each pair is a ``ClaimPair`` row; an answer that is missing or malformed for one pair
leaves only that pair unjudged (counted in ``invalid``, asked again alone, then on a later render, up to
``MAX_INVALID``), never the rest of its call.

**Document series.** When the *older* document's own status line names the newer one ("Superseded by
[036](036-multi-cluster.md)", "Rejected (see 019)"), their status claims are a supersession by the newer,
and for other attributes a pair the model reads as a replacement by the newer is one. A document that
merely mentions another (a rebuttal citing the report it refutes) is an independent witness.

Outcomes change statuses only, never text: ``duplicate`` keeps the claim beside the one it repeats
(active again if that one is retracted); ``supersedes`` moves the older value to History; ``disputes``
marks both ``disputed`` and opens a ``Contradiction``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import unquote

from rapidfuzz import fuzz
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Claim, ClaimPair, Contradiction, Entity
from synth import repository, slots
from synth.deps import SynthDeps
from synth.errors import InvalidAnswer
from synth.grounding import normalise
from synth.prompts import judge as judge_prompt

log = logging.getLogger(__name__)

MIN_LEXICAL = 70.0  # token_sort_ratio of two claims without an attribute to be compared
LEXICAL_NEIGHBOURS = 2
MIN_NEAR_COPY = 85.0  # two claims this alike are compared even when their attributes differ
MIN_SAME_FRAME = 90.0  # fuzz.ratio of two quotes with their values taken out: the same sentence, one question
MIN_FRAME_WORDS = 4  # words of a frame, the value marker among them: shorter quotes say too little
MAX_INVALID = 3
MIN_NAME_CHARS = 6
OPEN = ("active", "disputed")
PAIRED = (*OPEN, "duplicate")  # a duplicate still answers its slot: it is paired like its original


# --- document series -------------------------------------------------------------------------------


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
    """Whether ``text`` (a status line) names the document that arrived as ``origin``.

    A link or file name counts, and so does the document's number (``036`` or ``36`` of
    ``036-multi-cluster.md``) standing alone in the line.
    """
    if not text:
        return False
    folded = unquote(text).casefold()
    if any(re.search(r"(?<![\w.-])" + re.escape(n) + r"(?![\w-])", folded) for n in source_names(origin)):
        return True
    stem = origin.replace("\\", "/").rsplit("/", 1)[-1].casefold()
    number = re.match(r"(\d{2,})[-_. ]", stem)
    if number is None:
        return False
    n = number.group(1).lstrip("0") or "0"
    return re.search(r"(?<![\w.])0*" + re.escape(n) + r"(?![\w-])", folded) is not None


@dataclass
class _SourceInfo:
    title: str
    origin: str
    status: str | None


def _series_winner(a: _SourceInfo, b: _SourceInfo) -> str | None:
    """'A' or 'B' when the other side's own status line names it (it is the newer of a series)."""
    a_names_b = names_source(a.status, b.origin)
    b_names_a = names_source(b.status, a.origin)
    if a_names_b and not b_names_a:
        return "B"
    if b_names_a and not a_names_b:
        return "A"
    return None


# --- deciding ----------------------------------------------------------------------------------------


def _value(c: Claim) -> slots.Value | None:
    return slots.Value(c.value_norm, c.value_type or "text") if c.value_norm else None


def _dated_winner(a: Claim, b: Claim) -> str | None:
    """'A' or 'B': the side whose value refers to the later date, when both are dated and differ."""
    da, db = a.as_of_norm, b.as_of_norm
    if not da or not db or da == db or da.startswith(db + "-") or db.startswith(da + "-"):
        return None
    return "A" if da > db else "B"


@dataclass(frozen=True)
class Decision:
    verdict: str  # duplicate | supersedes | disputes | unrelated
    winner: str | None  # for supersedes: 'A' or 'B'
    reason: str


def _frame(c: Claim) -> str | None:
    """The claim's quote, folded, with its value replaced by a marker; None when the quote lacks the value."""
    if not c.value or not c.quote:
        return None
    quote, value = f" {slots.fold(c.quote)} ", f" {slots.fold(c.value)} "
    if value.strip() == "" or value not in quote:
        return None
    frame = quote.replace(value, " # ", 1)
    return " ".join(frame.split()) if len(frame.split()) >= MIN_FRAME_WORDS else None


def same_frame(a: Claim, b: Claim) -> bool:
    """True when the two quotes are the same sentence apart from their values ("X is a baseball player" /
    "X is a chess player"): whatever else they say, they answer one question."""
    fa, fb = _frame(a), _frame(b)
    return fa is not None and fb is not None and fuzz.ratio(fa, fb) >= MIN_SAME_FRAME


def decide_by_code(a: Claim, b: Claim, series: str | None) -> Decision | None:
    """The verdict code can give for two claims of one slot, or None when the model must read them."""
    va, vb = _value(a), _value(b)
    if slots.same_value(va, vb):
        return Decision("duplicate", None, "same value")
    if a.attr_key == "status" and series is not None:
        return Decision("supersedes", series, "the older document's status line names the newer one")
    dated = _dated_winner(a, b)
    if slots.can_change(a.attr_key) and dated is not None and va is not None and vb is not None:
        return Decision("supersedes", dated, "a changing value at a later date")
    return None


def verdict(
    answer: judge_prompt.PairAnswer, a: Claim, b: Claim, series: str | None
) -> Decision:
    """Map the model's reading of a pair to a verdict, with the vetoes code keeps for itself.

    - equal values (``slots.same_value``) are never a disagreement: ``duplicate`` if the model read one
      question, else ``unrelated``;
    - not the same question: ``unrelated``, unless the quotes are one sentence apart from the values
      (:func:`same_frame`), which a small model often reads as two questions;
    - the same answer: ``duplicate``, unless the values are dates or numbers that differ;
    - both can be true: ``unrelated``, unless the attribute cannot change and its dates or numbers differ;
    - a replacement: ``supersedes`` only when the documents' dates or a status line say so, else a dispute;
    - otherwise ``disputes``.
    """
    why = " ".join(answer.reason.split())[:300]
    if slots.same_value(_value(a), _value(b)):
        if answer.same_question:
            return Decision("duplicate", None, "same value")
        return Decision("unrelated", None, why or "not the same question")
    if not answer.same_question and not same_frame(a, b):
        return Decision("unrelated", None, why or "not the same question")
    differ = slots.hard_differ(_value(a), _value(b))
    if answer.same_answer and not differ:
        return Decision("duplicate", None, why or "same answer")
    if answer.both_true and not (differ and not slots.can_change(a.attr_key)):
        return Decision("unrelated", None, why or "both can be true")
    if answer.replaces is not None:
        if answer.replaces in (series, _dated_winner(a, b)):
            return Decision("supersedes", answer.replaces, why or "replaced")
        why = f"{why} (a replacement that neither the dates nor a status line show)".strip()
        return Decision("disputes", None, why)
    return Decision("disputes", None, why or "the sources disagree")


# --- planning, asking, applying ------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """A pair that needs the model: the new claim, the other one, and what the prompt shows."""

    new: str
    old: str
    kind: str  # candidate | lexical
    pair: judge_prompt.Pair
    series: str | None


def _infos(session: Session, claims: list[Claim]) -> dict[str, _SourceInfo]:
    out = {}
    for s in repository.sources_by_id(session, {c.source_id for c in claims}).values():
        out[s.id] = _SourceInfo(s.title or s.origin.rsplit("/", 1)[-1], s.origin,
                                repository.status_line(session, s.id))
    return out


def _side(c: Claim, info: _SourceInfo, lexical: bool) -> judge_prompt.Side:
    value = c.text if lexical or not c.value else c.value
    return judge_prompt.Side(value, c.quote, info.title, c.as_of or c.valid_from, info.status)


def _done_pairs(session: Session, entity_id: int) -> tuple[set[frozenset[str]], dict[frozenset[str], ClaimPair]]:
    done, pending = set(), {}
    for p in repository.entity_pairs(session, entity_id):
        key = frozenset((p.claim_new, p.claim_old))
        if p.verdict is not None or p.invalid >= MAX_INVALID:
            done.add(key)
        else:
            pending[key] = p
    return done, pending


def _record(session: Session, entity_id: int, new: str, old: str, kind: str, decision: Decision | None,
            pending: dict[frozenset[str], ClaimPair]) -> ClaimPair:
    key = frozenset((new, old))
    row = pending.get(key)
    if row is None:
        row = ClaimPair(entity_id=entity_id, claim_new=new, claim_old=old, kind=kind, reason="", invalid=0)
        session.add(row)
        pending[key] = row
    if decision is not None:
        row.verdict, row.reason = decision.verdict, decision.reason[:2000]
    return row


def _apply(session: Session, entity_id: int, a: Claim, b: Claim, d: Decision) -> int:
    """Apply one decision to claims still paired; returns 1 when a contradiction was opened.

    A duplicate takes part like the claim it repeats, so the contradictions between two groups of
    sources are the same whichever claim of a group arrived first: every cross pair is recorded.
    """
    a.judgement = f"{d.verdict}: {d.reason}"[:2000]
    if a.status not in PAIRED or b.status not in PAIRED:
        return 0
    if d.verdict == "duplicate":
        if a.status in OPEN:
            a.status, a.superseded_by = "duplicate", b.superseded_by if b.status == "duplicate" else b.id
    elif d.verdict == "supersedes":
        winner, loser = (a, b) if d.winner == "A" else (b, a)
        loser.status, loser.superseded_by = "superseded", winner.id
    elif d.verdict == "disputes":
        for c in (a, b):
            if c.status in OPEN:
                c.status = "disputed"
        x, y = sorted((a.id, b.id))
        exists = session.scalar(select(Contradiction.id).where(Contradiction.claim_a == x, Contradiction.claim_b == y))
        if exists is None:
            session.add(Contradiction(entity_id=entity_id, claim_a=x, claim_b=y, reason=d.reason[:2000]))
            return 1
    return 0


def plan(session: Session, entity: Entity) -> list[Task]:
    """Decide what code can (in this transaction) and return the pairs that need the model."""
    claims = repository.entity_claims(session, entity.id, PAIRED)
    if not any(not c.judged for c in claims):
        return []
    infos = _infos(session, claims)
    done, pending = _done_pairs(session, entity.id)
    tasks: list[Task] = []
    asked: set[frozenset[str]] = set()
    for c in claims:
        if c.judged or c.status not in PAIRED:
            continue
        others = [o for o in claims if o.source_id != c.source_id and frozenset((c.id, o.id)) not in done]
        slot = [o for o in others if c.attr_key and o.attr_key == c.attr_key]
        text = normalise(c.text)
        scored = sorted(
            ((fuzz.token_sort_ratio(text, normalise(o.text)), o) for o in others if o not in slot),
            key=lambda t: (-t[0], t[1].id),
        )
        if not c.attr_key or not c.value_norm:
            lexical = [o for score, o in scored[:LEXICAL_NEIGHBOURS] if score >= MIN_LEXICAL]
        else:  # a near copy whose model-chosen attribute differs (a planted wrong passage often is one)
            lexical = [o for score, o in scored[:1] if score >= MIN_NEAR_COPY]
        for o in slot + lexical:
            key = frozenset((c.id, o.id))
            if key in done or key in asked or c.status not in PAIRED or o.status not in PAIRED:
                continue
            is_lexical = o not in slot
            series = _series_winner(infos[c.source_id], infos[o.source_id])
            decision = None if is_lexical else decide_by_code(c, o, series)
            if decision is not None:
                _record(session, entity.id, c.id, o.id, "code", decision, pending)
                _apply(session, entity.id, c, o, decision)
                done.add(key)
                continue
            asked.add(key)
            question = (f"Do these statements about {' '.join(entity.name.split())} agree?" if is_lexical
                        else judge_prompt.question(c.attribute, entity.name))
            pair = judge_prompt.Pair(entity.name, question, _side(c, infos[c.source_id], is_lexical),
                                     _side(o, infos[o.source_id], is_lexical))
            tasks.append(Task(c.id, o.id, "lexical" if is_lexical else "candidate", pair, series))
            _record(session, entity.id, c.id, o.id, tasks[-1].kind, None, pending)
    waiting = {t.new for t in tasks}
    for c in claims:
        if not c.judged and c.id not in waiting:
            c.judged = True
    session.flush()
    return tasks


def ask(deps: SynthDeps, tasks: list[Task], job_id: int) -> dict[tuple[str, str], judge_prompt.PairAnswer]:
    """The model's answers by (new, old) id; pairs whose answer is missing or invalid are absent.

    Pairs go ``MAX_PAIRS_PER_CALL`` at a time; a pair left without a usable answer is asked once more on
    its own, so one bad answer cannot cost its neighbours their judgement.
    """
    answers: dict[tuple[str, str], judge_prompt.PairAnswer] = {}
    size = judge_prompt.MAX_PAIRS_PER_CALL

    def call(group: list[Task]) -> None:
        ctx = judge_prompt.JudgeContext(tuple(t.pair for t in group))
        try:
            done = deps.client.complete(
                "judge", judge_prompt.build_messages(ctx), judge_prompt.PairJudgement, job_id=job_id,
                validation_context=judge_prompt.validation_context(ctx),
            )
        except InvalidAnswer as exc:
            log.warning("judge answer invalid for %d pair(s): %s", len(group), exc)
            return
        for a in done.value.pairs:
            t = group[a.pair - 1]
            answers[(t.new, t.old)] = a

    for i in range(0, len(tasks), size):
        call(tasks[i : i + size])
    for t in tasks:
        if (t.new, t.old) not in answers and len(tasks) > 1:
            call([t])
    return answers


def apply_answers(
    session: Session, entity_id: int, tasks: list[Task], answers: dict[tuple[str, str], judge_prompt.PairAnswer]
) -> int:
    """Apply the model's answers to claims still open; returns the contradictions opened."""
    _, pending = _done_pairs(session, entity_id)
    opened = 0
    unresolved: set[str] = set()
    for t in tasks:
        a, b = session.get(Claim, t.new), session.get(Claim, t.old)
        if a is None or b is None:
            continue
        answer = answers.get((t.new, t.old))
        if answer is None:
            row = _record(session, entity_id, t.new, t.old, t.kind, None, pending)
            row.invalid = (row.invalid or 0) + 1
            if row.invalid >= MAX_INVALID:
                row.verdict, row.reason = "unjudged", f"no valid answer in {row.invalid} tries"
            else:
                unresolved.add(t.new)
            continue
        decision = verdict(answer, a, b, t.series)
        _record(session, entity_id, t.new, t.old, t.kind, decision, pending)
        opened += _apply(session, entity_id, a, b, decision)
    for t in tasks:
        claim = session.get(Claim, t.new)
        if claim is not None and t.new not in unresolved:
            claim.judged = True
    session.flush()
    return opened


def judge_entity(deps: SynthDeps, entity_id: int, job_id: int) -> int:
    """Judge the entity's new claims; returns the contradictions opened."""
    with deps.session_factory() as session, session.begin():
        entity = session.get(Entity, entity_id)
        if entity is None:
            return 0
        tasks = plan(session, entity)
    if not tasks:
        return 0
    answers = ask(deps, tasks, job_id)
    with deps.session_factory() as session, session.begin():
        return apply_answers(session, entity_id, tasks, answers)


def pairs_of(session: Session, claim_ids: set[str]) -> list[ClaimPair]:
    """The judged pairs touching any of ``claim_ids`` (for diagnostics and the eval)."""
    return repository.pairs_touching(session, claim_ids)
