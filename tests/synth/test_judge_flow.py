"""The judge flow on a real SQLite ledger: code decisions, the pairwise model, vetoes, document series,
one bad answer costing only its own pair, and order invariance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import Claim, ClaimPair, Contradiction, Entity, Source
from synth import judge_flow, slots
from synth.deps import SynthDeps
from synth.errors import InvalidAnswer
from synth.judge_flow import Decision, decide_by_code, names_source, source_names, verdict
from synth.prompts.judge import PairAnswer, PairJudgement


@pytest.fixture
def factory(tmp_path):
    url = f"sqlite:///{tmp_path / 'lore.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def _claim(cid: str, source: str, attr: str | None, value: str | None, *, as_of: str | None = None,
           entity: int = 1, text: str | None = None, quote: str | None = None) -> Claim:
    key = slots.attribute_key(attr)
    v = slots.normalize_value(value, key)
    return Claim(id=cid, entity_id=entity, source_id=source, key=cid, text=text or f"{attr} is {value}",
                 quote=quote or f"{attr} {value}", attribute=attr, value=value, attr_key=key,
                 value_norm=v.norm if v else None, value_type=v.type if v else None, as_of=as_of,
                 as_of_norm=slots.normalize_date(as_of))


def _ledger(factory, claims: list[Claim], sources: dict[str, tuple[str, str | None]] | None = None) -> None:
    sources = sources or {}
    with factory() as s, s.begin():
        s.add(Entity(id=1, name="Broken Bow", norm_name="broken bow", type="places", slug="broken-bow"))
        s.add(Entity(id=2, name="doc", norm_name="doc", type="documents", slug="doc"))
        for sid in sorted({c.source_id for c in claims}):
            origin, status = sources.get(sid, (f"{sid}.md", None))
            s.add(Source(id=sid, slug=sid, origin=origin, origin_key=origin, title=origin, text="t"))
            if status:
                s.flush()
                s.add(Claim(id=f"st-{sid}", entity_id=2, source_id=sid, key=f"st-{sid}", text=f"Status: {status}",
                            quote=status, attribute="status", value=status, attr_key="status",
                            value_norm=status.lower(), value_type="text", judged=True))
        s.flush()
        s.add_all(claims)


@dataclass
class Done:
    value: Any
    assisted_by: str = ""


class RecordingJudge:
    """A hand-written model client: answers each pair by ``rule`` and records every request."""

    def __init__(self, rule, broken: set[int] | None = None, fail_calls: int = 0) -> None:
        self.rule = rule
        self.broken = broken or set()  # pair numbers (1-based within a call) answered with a bad pair number
        self.fail_calls = fail_calls
        self.calls: list[list[str]] = []

    def complete(self, stage, messages, response_model, **kw):
        assert stage == "judge"
        assert response_model is PairJudgement
        body = messages[-1]["content"]
        heads = [line for line in body.splitlines() if line.startswith("PAIR ")]
        self.calls.append(heads)
        if len(self.calls) <= self.fail_calls:
            raise InvalidAnswer("not JSON")
        answers = []
        for n, head in enumerate(heads, start=1):
            answer = dict(self.rule(head, body))
            answers.append({"pair": 99 if n in self.broken else n, **answer})
        try:  # like the real client after its one repair: an answer still invalid is InvalidAnswer
            return Done(PairJudgement.model_validate({"pairs": answers}, context=kw["validation_context"]))
        except ValidationError as exc:
            raise InvalidAnswer(str(exc)) from exc


def conflict(head, body):
    return {"same_question": True, "same_answer": False, "both_true": False, "replaces": None, "reason": "differ"}


def _deps(factory, client) -> SynthDeps:
    return SynthDeps(factory, None, client)  # type: ignore[arg-type]


def _statuses(factory) -> dict[str, str]:
    with factory() as s:
        return {c.id: c.status for c in s.scalars(select(Claim).where(Claim.entity_id == 1))}


# --- code decides ----------------------------------------------------------------------------------


def test_equal_values_are_duplicates_without_a_model_call(factory):
    _ledger(factory, [_claim("c1", "s1", "population", "3,559 people"), _claim("c2", "s2", "population", "3559")])
    client = RecordingJudge(conflict)
    judge_flow.judge_entity(_deps(factory, client), 1, job_id=1)
    assert client.calls == []
    st = _statuses(factory)
    assert sorted(st.values()) == ["active", "duplicate"]


def test_a_changing_value_with_dates_is_superseded_by_the_later_date_in_either_order(factory):
    older = _claim("c9", "s1", "population", "3,559", as_of="2010")  # the later id: arrival/ids decide nothing
    newer = _claim("c1", "s2", "population", "3,506", as_of="2020")
    _ledger(factory, [older, newer])
    client = RecordingJudge(conflict)
    judge_flow.judge_entity(_deps(factory, client), 1, job_id=1)
    assert client.calls == []
    assert _statuses(factory) == {"c9": "superseded", "c1": "active"}


def test_a_fixed_attribute_with_different_values_is_a_candidate_the_model_confirms(factory):
    _ledger(factory, [_claim("c1", "s1", "born", "August 1, 1983", as_of="1983"),
                      _claim("c2", "s2", "date of birth", "1985", as_of="1985")])
    client = RecordingJudge(conflict)
    opened = judge_flow.judge_entity(_deps(factory, client), 1, job_id=1)
    assert opened == 1
    assert len(client.calls) == 1
    assert "What is the born of Broken Bow?" in client.calls[0][0]
    assert _statuses(factory) == {"c1": "disputed", "c2": "disputed"}
    with factory() as s:
        (x,) = s.scalars(select(Contradiction)).all()
        assert {x.claim_a, x.claim_b} == {"c1", "c2"}
        (pair,) = s.scalars(select(ClaimPair)).all()
        assert (pair.kind, pair.verdict) == ("candidate", "disputes")


def test_claims_of_one_source_or_other_slots_are_never_paired(factory):
    _ledger(factory, [_claim("c1", "s1", "population", "1"), _claim("c2", "s1", "population", "2"),
                      _claim("c3", "s2", "mayor", "Ann Lee")])
    client = RecordingJudge(conflict)
    judge_flow.judge_entity(_deps(factory, client), 1, job_id=1)
    assert client.calls == []
    assert set(_statuses(factory).values()) == {"active"}


def test_a_near_copy_with_another_attribute_is_still_compared(factory):
    a = _claim("c1", "s1", "type", "television series",
               text="Ardhangini is an Indian Bengali-language television series.")
    b = _claim("c2", "s2", "language", "Assamese",
               text="Ardhangini is an Indian Assamese-language television series.")
    far = _claim("c3", "s3", "network", "Rang", text="It aired on Rang from 2017.")
    _ledger(factory, [a, b, far])
    client = RecordingJudge(conflict)
    judge_flow.judge_entity(_deps(factory, client), 1, job_id=1)
    assert len(client.calls) == 1
    assert len(client.calls[0]) == 1
    assert "Do these statements about Broken Bow agree?" in client.calls[0][0]
    assert _statuses(factory) == {"c1": "disputed", "c2": "disputed", "c3": "active"}


# --- the verdict mapping and its vetoes ---------------------------------------------------------------


def _answer(**kw) -> PairAnswer:
    row = {"pair": 1, "same_question": True, "same_answer": False, "both_true": False, "replaces": None,
           "reason": "r"}
    return PairAnswer.model_validate({**row, **kw})


@pytest.mark.parametrize(("answer", "attr", "va", "vb", "expected"), [
    (_answer(same_question=False), "population", "1", "2", "unrelated"),
    (_answer(same_question=False), "sport", "Baseball", "baseball", "unrelated"),
    (_answer(same_question=True, same_answer=False), "sport", "Baseball", "baseball", "duplicate"),
    (_answer(), "construction date", "1875", "1875", "duplicate"),
    (_answer(same_answer=True), "owner", "Team Atlas", "Atlas team", "duplicate"),
    (_answer(same_answer=True), "population", "3,559", "10,000", "disputes"),  # numbers differ: never a duplicate
    (_answer(both_true=True), "cast", "Tom Hanks", "Meg Ryan", "unrelated"),
    (_answer(both_true=True), "birth date", "1983", "1985", "disputes"),  # a fixed date cannot have two values
    (_answer(replaces="B"), "approach", "one cluster", "two clusters", "disputes"),  # no dates, no status line
    (_answer(), "root cause", "a full disk", "an expired certificate", "disputes"),
])
def test_the_model_answers_facts_and_code_keeps_the_vetoes(answer, attr, va, vb, expected):
    a, b = _claim("a", "s1", attr, va), _claim("b", "s2", attr, vb)
    assert verdict(answer, a, b, None).verdict == expected


def _framed(cid: str, source: str, value: str, quote: str) -> Claim:
    return _claim(cid, source, None, value, quote=quote)


def test_one_sentence_apart_from_the_value_is_one_question():
    a = _framed("a", "s1", "baseball", "Ronald Powell is an American professional baseball player.")
    b = _framed("b", "s2", "chess", "Ronald Powell is an American professional chess player.")
    assert judge_flow.same_frame(a, b)
    unrelated = _answer(same_question=False)
    assert verdict(unrelated, a, b, None).verdict == "disputes"  # the small model's "two questions" is overruled
    # both can be true still stands: one sentence frame, two cast members
    c = _framed("c", "s1", "Tom Hanks", "The film stars Tom Hanks in the lead role.")
    d = _framed("d", "s2", "Meg Ryan", "The film stars Meg Ryan in the lead role.")
    assert judge_flow.same_frame(c, d)
    assert verdict(_answer(same_question=False, both_true=True), c, d, None).verdict == "unrelated"


@pytest.mark.parametrize(("qa", "va", "qb", "vb"), [
    ("Ronald Powell played for the Florida Gators.", "Florida Gators",  # different sentences
     "Ronald Powell is a chess player with a deep understanding of the game.", "chess"),
    ("Founded in 1875.", "1875", "Founded in 1880.", "1880"),  # too short to be a frame
    ("The town had 3,559 people in 2010.", "10,000", "The town had 10,000 people.", "10,000"),  # value not quoted
    ("Ronald Powell is an American baseball player.", "", "Ronald Powell is an American chess player.", "chess"),
])
def test_different_sentences_short_quotes_or_unquoted_values_are_no_frame(qa, va, qb, vb):
    a, b = _framed("a", "s1", va, qa), _framed("b", "s2", vb, qb)
    assert not judge_flow.same_frame(a, b)
    assert verdict(_answer(same_question=False), a, b, None).verdict == "unrelated"


def test_a_replacement_stands_when_dates_or_a_status_line_show_it():
    a = _claim("a", "s1", "approach", "one cluster", as_of="2021")
    b = _claim("b", "s2", "approach", "two clusters", as_of="2024")
    assert verdict(_answer(replaces="B"), a, b, None) == Decision("supersedes", "B", "r")
    assert verdict(_answer(replaces="A"), a, b, None).verdict == "disputes"  # against the dates
    undated = _claim("b", "s2", "approach", "two clusters")
    assert verdict(_answer(replaces="B"), a, undated, "B").verdict == "supersedes"  # the series says so


def test_decide_by_code_leaves_undecidable_pairs_to_the_model():
    a, b = _claim("a", "s1", "population", "3,559"), _claim("b", "s2", "population", "10,000")
    assert decide_by_code(a, b, None) is None  # no dates
    assert decide_by_code(_claim("a", "s1", "status", "Superseded by 036"), _claim("b", "s2", "status", "Accepted"),
                          "B") == Decision("supersedes", "B", "the older document's status line names the newer one")


# --- document series -------------------------------------------------------------------------------


def test_only_distinctive_file_names_or_a_documents_number_link():
    assert source_names("adrs/036-Multi-Cluster.md") == {"036-multi-cluster.md", "036-multi-cluster"}
    assert source_names("notes.md") == set()
    assert names_source("Superseded by [ADR 36](036-Multi-Cluster.md)", "x/036-multi-cluster.md")
    assert names_source("Superseded by [[036-multi-cluster]]", "036-multi-cluster.md")
    assert names_source("Rejected (see 019)", "019-shared-ingress.md")
    assert names_source("Superseded by 36. Multi-cluster", "036-multi-cluster.md")
    assert not names_source("see 1036-multi-cluster.md", "036-multi-cluster.md")
    assert not names_source("see 036-multi-cluster-v2.md", "036-multi-cluster.md")
    assert not names_source("Accepted", "036-multi-cluster.md")
    assert not names_source(None, "036-multi-cluster.md")


def test_the_series_guard_follows_the_older_documents_status_line_not_arrival(factory):
    # the newer document (036) has the smaller id and arrives "first" by id order: direction still comes
    # from 021's status line naming 036
    old = _claim("c2", "s21", "approach", "one cluster")
    new = _claim("c1", "s36", "approach", "several clusters")
    _ledger(factory, [old, new], {"s21": ("adrs/021-multi-cluster.md", "Superseded by [036](036-multi-cluster.md)"),
                                  "s36": ("adrs/036-multi-cluster.md", "Accepted")})

    def replaces_older(head, body):  # the model reads the newer one (status Accepted) as the replacement
        side = "A" if body.index('"source_status": "Accepted"') < body.index("Superseded by") else "B"
        return {**conflict(head, body), "replaces": side}

    judge_flow.judge_entity(_deps(factory, RecordingJudge(replaces_older)), 1, job_id=1)
    assert _statuses(factory) == {"c2": "superseded", "c1": "active"}


def test_a_rebuttal_that_merely_mentions_the_report_stays_a_dispute(factory):
    report = _claim("c1", "s1", "root cause", "a full disk")
    rebuttal = _claim("c2", "s2", "root cause", "an expired certificate")
    _ledger(factory, [report, rebuttal], {"s1": ("pm-2021-007.md", "Final"), "s2": ("rebuttal-2021.md", None)})

    def says_b_replaces(head, body):
        return {**conflict(head, body), "replaces": "B"}

    opened = judge_flow.judge_entity(_deps(factory, RecordingJudge(says_b_replaces)), 1, job_id=1)
    assert opened == 1
    assert set(_statuses(factory).values()) == {"disputed"}


# --- one bad answer costs one pair ----------------------------------------------------------------


def _six_candidates(factory) -> None:
    claims = [_claim("c0", "s0", "born", "1900")]
    claims += [_claim(f"c{i}", f"s{i}", "born", str(1900 + i)) for i in range(1, 7)]
    _ledger(factory, claims)


def test_an_invalid_answer_for_one_pair_is_asked_again_alone(factory):
    _six_candidates(factory)
    client = RecordingJudge(conflict, broken={2})  # pair 2 of every call names a pair that was not asked
    judge_flow.judge_entity(_deps(factory, client), 1, job_id=1)
    with factory() as s:
        pairs = s.scalars(select(ClaimPair)).all()
    assert len(pairs) == 21  # 7 claims of 7 sources, one slot: every pair once
    assert {p.verdict for p in pairs} == {"disputes"}
    assert [len(c) for c in client.calls] == [5, 5, 5, 5, 1] + [1] * 4  # 21 pairs five a call, then the
    # second pair of each full call asked again alone


def test_an_invalid_answer_leaves_only_its_own_pair_unjudged(factory):
    _six_candidates(factory)
    client = RecordingJudge(conflict, broken={1})  # pair 1 of every call, also when asked alone
    judge_flow.judge_entity(_deps(factory, client), 1, job_id=1)
    with factory() as s:
        pairs = s.scalars(select(ClaimPair)).all()
        pending = [p for p in pairs if p.verdict is None]
        unjudged_claims = {c.id for c in s.scalars(select(Claim).where(Claim.entity_id == 1, ~Claim.judged))}
    assert len(pending) == 5
    assert all(p.invalid == 1 for p in pending)
    assert {p.verdict for p in pairs if p.verdict} == {"disputes"}
    assert unjudged_claims == {p.claim_new for p in pending}  # asked again on the next render


def test_a_pair_is_asked_again_later_and_given_up_after_max_invalid(factory):
    _ledger(factory, [_claim("c1", "s1", "born", "1983"), _claim("c2", "s2", "born", "1985")])
    client = RecordingJudge(conflict, fail_calls=100)
    for _ in range(judge_flow.MAX_INVALID):
        judge_flow.judge_entity(_deps(factory, client), 1, job_id=1)
    with factory() as s:
        (pair,) = s.scalars(select(ClaimPair)).all()
        assert pair.invalid == judge_flow.MAX_INVALID
        assert pair.verdict == "unjudged"
        assert all(c.judged for c in s.scalars(select(Claim).where(Claim.entity_id == 1)))
    assert len(client.calls) == judge_flow.MAX_INVALID
    judge_flow.judge_entity(_deps(factory, client), 1, job_id=1)
    assert len(client.calls) == judge_flow.MAX_INVALID  # nothing left to ask


def test_the_same_claims_in_any_order_give_the_same_disputes(tmp_path):
    def run(order: list[int]) -> set[frozenset[str]]:
        url = f"sqlite:///{tmp_path / f'o{order[0]}.db'}"
        upgrade(url)
        engine = make_engine(url)
        f = make_session_factory(engine)
        base = [_claim("c1", "s1", "born", "1983"), _claim("c2", "s2", "born", "1983"),
                _claim("c3", "s3", "born", "1985")]
        _ledger(f, [])
        for i in order:  # each claim arrives and is judged before the next one
            with f() as s, s.begin():
                src = base[i].source_id
                s.add(Source(id=src, slug=src, origin=f"{src}.md", origin_key=src, text="t"))
                s.flush()
                s.add(_claim(base[i].id, src, "born", base[i].value))
            judge_flow.judge_entity(_deps(f, RecordingJudge(conflict)), 1, job_id=1)
        with f() as s:
            out = {frozenset((x.claim_a, x.claim_b)) for x in s.scalars(select(Contradiction))}
        engine.dispose()
        return out

    forward, backward = run([0, 1, 2]), run([2, 1, 0])
    assert forward
    assert forward == backward
