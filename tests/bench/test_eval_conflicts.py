"""Scoring of `lore eval conflicts`, and one record through the real write path with the fake server."""

from __future__ import annotations

from bench.eval_conflicts import load_records, run_record, score
from bench.fake_llm import FakeLLM
from synth.client import Endpoint, ModelClient


def test_scores_follow_their_definitions():
    rows = [
        {"gold_misinfo": True, "flagged": True, "entities_for_name": 1, "disambig": 1, "failed_sources": []},
        {"gold_misinfo": True, "flagged": False, "entities_for_name": 1, "disambig": 1, "failed_sources": []},
        {"gold_misinfo": False, "flagged": True, "entities_for_name": 1, "disambig": 2, "failed_sources": []},
        {"gold_misinfo": False, "flagged": False, "entities_for_name": 2, "disambig": 2, "failed_sources": []},
    ]
    s = score(rows)
    assert (s["precision"], s["recall"], s["f1"]) == (0.5, 0.5, 0.5)
    assert s["false_flag_rate"] == 0.5
    assert s["false_flag_by_same_name_entities"] == {"2": {"records": 2, "false_flag_rate": 0.5}}
    assert s["entity_split_accuracy"] == 0.75


def test_one_record_through_the_write_path(shared_data):
    record = load_records(shared_data / "conflicts/ramdocs-dev.jsonl", limit=1)[0]
    with FakeLLM(seed=1) as fake:
        row = run_record(record, lambda factory: ModelClient([Endpoint(fake.base_url, "fake-llm")]))
    assert row["question"] == record["question"]
    assert row["entities_for_name"] >= 1
