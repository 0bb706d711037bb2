"""Scoring of `lore eval conflicts`, and one record through the real write path with the fake server."""

from __future__ import annotations

from bench.eval_conflicts import load_records, run_record, score
from bench.fake_llm import FakeLLM
from synth.client import Endpoint, ModelClient


def test_scores_follow_their_definitions():
    rows = [
        {"gold_misinfo": True, "flagged": True, "entities_for_name": 1, "disambig": 1, "failed_sources": []},
        {"gold_misinfo": True, "flagged": False, "entities_for_name": 1, "disambig": 1, "failed_sources": ["x"]},
        {"gold_misinfo": False, "flagged": True, "entities_for_name": 1, "disambig": 2, "failed_sources": []},
        {"gold_misinfo": False, "flagged": False, "entities_for_name": 2, "disambig": 2, "failed_sources": []},
    ]
    for row, sources, calls in zip(rows, (2, 1, 3, 0), (1, 0, 2, 0), strict=True):
        row.update(sources_with_claims_on_entity=sources, judge_calls=calls)
    s = score(rows)
    assert (s["precision"], s["recall"], s["f1"]) == (0.5, 0.5, 0.5)
    assert s["false_flag_rate"] == 0.5
    assert s["false_flag_by_same_name_entities"] == {"2": {"records": 2, "false_flag_rate": 0.5}}
    assert s["entity_split_accuracy"] == 0.75
    assert (s["sources_failed"], s["records_with_two_sources_on_entity"], s["judge_calls"]) == (1, 2, 3)


def test_one_record_through_the_write_path(shared_data):
    record = load_records(shared_data / "conflicts/ramdocs-dev.jsonl", limit=1)[0]
    with FakeLLM(seed=1) as fake:
        row = run_record(record, lambda factory: ModelClient([Endpoint(fake.base_url, "fake-llm")]))
    assert row["question"] == record["question"]
    assert row["entities_for_name"] >= 1
    # the diagnostics name the claims on the question's entity by the source that said them
    assert row["claims_on_entity"]
    assert all(c.startswith("doc-") for c in row["claims_on_entity"])
    assert row["sources_with_claims_on_entity"] >= 1
