"""The lexical benchmark on a tiny set: both sides answer every question, and answer it alike."""

from __future__ import annotations

import json
from pathlib import Path

from bench.lexical_bench import run

CORPUS = [
    {"id": "a", "title": "Kafka outage", "text": "The Kafka cluster lost its controller after broker 3 filled up."},
    {"id": "b", "title": "CoreDNS crash", "text": "CoreDNS pods crashed after a bad ConfigMap was applied."},
    {"id": "c", "title": "Payroll team", "text": "Alice Smith leads the payroll team in Copenhagen."},
]
QUESTIONS = ["Which broker filled up in the Kafka cluster?", "Who leads payroll?", "Why did CoreDNS crash?"]


def test_both_sides_answer_every_question_alike(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(p) + "\n" for p in CORPUS), encoding="utf-8")
    (tmp_path / "questions.jsonl").write_text(
        "".join(json.dumps({"question": q}) + "\n" for q in QUESTIONS), encoding="utf-8"
    )
    report = run([tmp_path], chunks=30, depth=10)
    assert report["questions"] == 3
    assert report["index"]["chunks"] == 30
    assert report["same_top10_order"] == 3
    assert report["memory_ms"]["p50"] > 0
    assert report["fts5_ms"]["p50"] > 0
