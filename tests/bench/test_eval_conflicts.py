"""`lore eval conflicts`: sampling, detectability, scoring, both orders and the judge alone, with the
fake model server (mechanics only; the figures of the real model are in docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from bench.eval_conflicts import (
    detectable,
    gold_pairs,
    load_records,
    question_attribute,
    run_eval,
    run_judge_only,
    run_record,
    sample,
    score,
    stratum,
)
from bench.fake_llm import FakeLLM
from lore.wiring import make_recorder
from synth import slots
from synth.client import Endpoint, ModelClient


def _row(misinfo: bool, flagged: bool, disambig: int = 1, *, det: bool = True, disputes=(), split: int | None = None):
    return {"gold_misinfo": misinfo, "flagged": flagged, "disambig": disambig, "detectable": det,
            "entities_for_name": disambig if split is None else split, "failed_sources": [], "sources": 3,
            "rejections": {"quote": 1}, "disputes": list(disputes)}


def test_scores_follow_their_definitions():
    true_pair = {"true_pair": True}
    rows = [
        _row(True, True, disputes=[true_pair]),
        _row(True, False),
        _row(True, False, det=False),  # not detectable: outside recall_detectable
        _row(False, True, 2, disputes=[{"true_pair": False}]),
        _row(False, False, 2, split=1),
        _row(False, False, 1),
    ]
    s = score(rows)
    assert (s["precision"], s["recall_detectable"], s["recall"]) == (0.5, 0.5, 0.333)
    assert s["f1"] == 0.5
    assert s["detectable"] == 2
    assert s["false_flag_rate"] == {"1": 0.0, "2": 0.5}
    assert s["entity_split_accuracy"] == round(5 / 6, 3)
    assert s["pairs"] == {"disputes": 2, "true_pairs": 1, "pair_precision": 0.5}
    assert (s["sources"], s["sources_failed"], s["rejections"]) == (18, 0, {"quote": 6})


def test_the_sample_takes_equal_shares_of_the_four_strata(shared_data):
    records = load_records(shared_data / "conflicts/ramdocs-dev.jsonl")
    picked = sample(records, 16, seed=1)
    assert len(picked) == 16
    counts: dict = {}
    for r in picked:
        counts[stratum(r)] = counts.get(stratum(r), 0) + 1
    assert counts == {(1, False): 4, (1, True): 4, (2, False): 4, (2, True): 4}
    assert [r["_index"] for r in sample(records, 16, seed=1)] == [r["_index"] for r in picked]  # reproducible
    assert [r["_index"] for r in sample(records, 16, seed=2)] != [r["_index"] for r in picked]


def test_detectability_is_read_from_the_data():
    doc = {"type": "correct", "answer": "3,559", "text": "Broken Bow had 3,559 people."}
    wrong = {"type": "misinfo", "answer": "10,000", "text": "Broken Bow had 10,000 people."}
    elsewhere = {"type": "misinfo", "answer": "10,000", "text": "The town had 10,000 people."}
    record = {"disambig_entity": ["Broken Bow, Nebraska"], "documents": [doc, wrong]}
    assert detectable(record)
    assert not detectable({**record, "documents": [doc, elsewhere]})  # the wrong passage never names it
    assert not detectable({**record, "documents": [doc]})


def test_gold_pairs_and_the_questions_attribute(shared_data):
    assert question_attribute("What is the population of Broken Bow?") == "population"
    assert question_attribute("Who founded Acme?") is None
    pairs = gold_pairs(load_records(shared_data / "conflicts/ramdocs-dev.jsonl"))
    assert any(p.conflict for p in pairs)
    assert any(not p.conflict for p in pairs)
    for p in pairs:
        assert p.pair.a.value.casefold().replace(" ", "") in p.pair.a.quote.casefold().replace(" ", "")
    # agreement is two correct passages about one entity: one gold answer; two answers are two entities
    for p in pairs:
        if not p.conflict:
            same = slots.same_value(slots.normalize_value(p.pair.a.value, p.attr_key),
                                    slots.normalize_value(p.pair.b.value, p.attr_key))
            assert same != p.same_name, (p.pair.a.value, p.pair.b.value)
    assert any(p.same_name for p in pairs)


def test_two_answers_to_one_question_are_two_same_name_entities_not_an_agreement():
    def doc(kind: str, answer: str, where: str) -> dict:
        return {"type": kind, "answer": answer, "text": f"Chayanne is a studio album released in {answer} {where}."}
    record = {"_index": 0, "question": "When was Chayanne released?",
              "disambig_entity": ["Chayanne (1987 album)", "Chayanne (1988 album)"],
              "documents": [doc("correct", "1987", "in Mexico"), doc("correct", "1988", "in Spain"),
                            doc("correct", "1987", "on CBS"), doc("misinfo", "1995", "in Mexico")]}
    pairs = gold_pairs([record])
    assert [(p.conflict, p.same_name, p.pair.a.value, p.pair.b.value) for p in pairs] == [
        (True, False, "1987", "1995"), (False, False, "1987", "1987"), (False, True, "1987", "1988")]


def test_one_record_through_the_write_path(shared_data):
    record = load_records(shared_data / "conflicts/ramdocs-dev.jsonl", limit=1)[0]
    with FakeLLM(seed=1) as fake:
        row = run_record(record, lambda factory: ModelClient([Endpoint(fake.base_url, "fake-llm")],
                                                             recorder=make_recorder(factory)))
    assert row["question"] == record["question"]
    assert row["entities_for_name"] >= 1
    # the diagnostics name the claims on the question's entity by the source that said them
    assert row["claims_on_entity"]
    assert all(c.startswith("doc-") for c in row["claims_on_entity"])
    assert row["model_calls"]["extract"] >= 1


def test_both_orders_reuse_extractions_and_report_invariance(shared_data):
    with FakeLLM(seed=1) as fake:
        result = run_eval(shared_data / "conflicts/ramdocs-dev.jsonl",
                          lambda factory: ModelClient([Endpoint(fake.base_url, "fake-llm")],
                                                      recorder=make_recorder(factory)),
                          sample_n=4, seed=1, order="both")
        extract_requests = fake.stats()["by_stage"].get("extract", 0)
    assert result["records"] == 8  # four records, two orders
    assert set(result["orders"]) == {"forward", "reverse"}
    assert isinstance(result["order_invariant"], bool)
    assert result["order_invariant"] == (result["order_differences"] == [])
    forward_extracts = result["orders"]["forward"]["sources"]
    assert extract_requests <= forward_extracts + 2  # the reverse order asked (almost) nothing again
    for key in ("precision", "recall_detectable", "f1", "false_flag_rate", "entity_split_accuracy", "sources",
                "sources_failed", "rejections", "wall_s", "model_calls", "tokens", "detectable"):
        assert key in result


def test_the_judge_alone_on_gold_pairs(shared_data):
    with FakeLLM(seed=1) as fake:
        result = run_judge_only(shared_data / "conflicts/ramdocs-dev.jsonl",
                                ModelClient([Endpoint(fake.base_url, "fake-llm")]), sample_n=20, seed=1)
    assert result["pairs"] == 20
    assert result["conflict_pairs"] == result["agree_pairs"] == 10
    assert result["decided_by_code"] + result["asked_model"] == 20
    assert 0.0 <= result["precision"] <= 1.0
    assert result["recall"] > 0  # the fake judge reads differing answers of one question as a conflict
    assert result["same_name"]["pairs"] == 5  # scored apart, never in precision or recall
    assert sum(r["gold"] == "same_name" for r in result["rows"]) == 5


def test_a_cut_off_extraction_is_cached_like_an_answer():
    from bench.eval_conflicts import CachedClient
    from synth.errors import OutputTruncated

    class Cutting:  # stands in for a model client whose answer to this prompt is always cut off
        calls = 0

        def complete(self, stage, messages, response_model, **kw):
            Cutting.calls += 1
            raise OutputTruncated("answer cut at max_tokens=10")

    client = CachedClient(Cutting(), {})
    for _ in range(2):
        with pytest.raises(OutputTruncated):
            client.complete("extract", [{"role": "user", "content": "x"}], object)
    assert Cutting.calls == 1
