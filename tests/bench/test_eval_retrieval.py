"""The retrieval evaluation: metric definitions, a real slice of MuSiQue, and the CLI command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bench.eval_retrieval import (
    METHODS,
    EvalInputError,
    evaluate,
    load_corpus,
    load_questions,
    mean_metrics,
    question_metrics,
)
from search.embedding import SentenceTransformerEmbedder
from search.index import TUNED_ON, SearchConfig


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(threads=1)


def write_set(folder: Path, corpus: list[dict[str, Any]], questions: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(p) + "\n" for p in corpus), encoding="utf-8")
    (folder / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    return folder


# --- metric definitions -----------------------------------------------------------------------


def test_metrics_of_a_known_ranking() -> None:
    ranked = ["a", "x", "b", "y", "z", "c", "w"]
    m = question_metrics(ranked, ["a", "b", "c"])
    assert m["R@2"] == pytest.approx(1 / 3)
    assert m["R@5"] == pytest.approx(2 / 3)
    assert m["R@10"] == pytest.approx(1.0)
    assert (m["Full@5"], m["Full@10"]) == (0.0, 1.0)
    assert m["MRR"] == 1.0


def test_mrr_is_the_first_gold_rank_and_zero_past_100() -> None:
    assert question_metrics(["x", "y", "g"], ["g"])["MRR"] == pytest.approx(1 / 3)
    ranked = [f"n{i}" for i in range(100)] + ["g"]
    assert question_metrics(ranked, ["g"])["MRR"] == 0.0
    assert question_metrics(ranked[:99] + ["g"], ["g"])["MRR"] == pytest.approx(1 / 100)
    # a repeated id counts once, at its first position
    assert question_metrics(["x", "x", "g"], ["g"])["R@2"] == 1.0


def test_mean_metrics_averages_per_question() -> None:
    rows = [question_metrics(["g"], ["g"]), question_metrics(["x"], ["g"])]
    assert mean_metrics(rows) == {"R@2": 0.5, "R@5": 0.5, "R@10": 0.5, "Full@5": 0.5, "Full@10": 0.5, "MRR": 0.5}
    with pytest.raises(ValueError, match="gold"):
        question_metrics(["x"], [])


def test_bad_input_is_reported(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match="missing"):
        load_corpus(tmp_path)
    (tmp_path / "questions.jsonl").write_text('{"id": "q1", "question": "?"}\n', encoding="utf-8")
    with pytest.raises(EvalInputError, match="gold_ids"):
        load_questions(tmp_path)
    (tmp_path / "corpus.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(EvalInputError, match=":1: not JSON"):
        load_corpus(tmp_path)


# --- end to end -------------------------------------------------------------------------------

HAND_CORPUS = [
    {"id": "p1", "title": "Lake Baikal", "text": "Lake Baikal in Siberia is the deepest lake in the world."},
    {"id": "p2", "title": "Mount Everest", "text": "Mount Everest is the highest mountain above sea level."},
    {"id": "p3", "title": "Sahara", "text": "The Sahara is the largest hot desert, spanning North Africa."},
    {"id": "p4", "title": "Amazon", "text": "The Amazon river carries more water than any other river."},
]
HAND_QUESTIONS = [
    {"id": "q1", "question": "Which is the deepest lake?", "answers": ["Baikal"], "gold_ids": ["p1"]},
    {"id": "q2", "question": "Highest mountain above sea level?", "answers": ["Everest"], "gold_ids": ["p2"]},
    {"id": "q3", "question": "Deepest lake and highest mountain?", "answers": [], "gold_ids": ["p1", "p2"]},
]


def test_hand_made_set_where_the_answer_is_known(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    folder = write_set(tmp_path / "hand", HAND_CORPUS, HAND_QUESTIONS)
    report = evaluate(folder, minilm)
    assert (report["corpus"], report["passages"], report["questions"]) == ("hand", 4, 3)
    assert set(report["metrics"]) == set(METHODS)
    for method in METHODS:
        m = report["metrics"][method]
        # every gold passage is in the top 2 of every method on this set
        assert m["R@2"] == 1.0, method
        assert m["Full@5"] == 1.0, method
    # q3's two gold passages fill the top 2, so the first gold is always at rank 1
    assert report["metrics"]["hybrid"]["MRR"] == 1.0
    assert report["config"]["bm25_weight"] == pytest.approx(SearchConfig().bm25_weight)
    assert report["tuned_on"] == list(TUNED_ON)
    assert evaluate(folder, minilm, config=SearchConfig(fusion="rrf"))["tuned_on"] == []
    assert {"index_s", "query_embedding_ms", "hybrid_ms_per_query"} <= set(report["timings"])

    limited = evaluate(folder, minilm, limit=1)
    assert limited["questions"] == 1
    assert limited["passages"] == 4


def test_musique_slice(tmp_path: Path, shared_data: Path, minilm: SentenceTransformerEmbedder) -> None:
    source = shared_data / "retrieval" / "musique-100"
    questions = load_questions(source)[:15]
    gold = {g for q in questions for g in q["gold_ids"]}
    corpus = load_corpus(source)
    chosen = [p for p in corpus if p["id"] in gold] + [p for p in corpus if p["id"] not in gold][:200]
    folder = write_set(tmp_path / "musique-slice", chosen, questions)
    stages: list[tuple[str, int, int]] = []
    # Whole-passage vectors only (no windows) keeps this test to one embedding per passage.
    config = SearchConfig(window_tokens=100_000)
    report = evaluate(folder, minilm, config=config, progress=lambda s, d, t: stages.append((s, d, t)))
    assert report["passages"] == len(gold) + 200
    assert report["questions"] == 15
    assert stages[-1] == ("answering questions", 15, 15)
    assert ("embedding passages", len(chosen), len(chosen)) in stages
    for method, m in report["metrics"].items():
        assert 0.0 <= m["R@2"] <= m["R@5"] <= m["R@10"] <= 1.0, method
        assert 0.0 <= m["Full@5"] <= m["Full@10"] <= 1.0, method
        assert m["Full@10"] <= m["R@10"], method
    # with 200 distractors the retriever still finds a supporting passage first for most questions
    assert report["metrics"]["hybrid"]["MRR"] > 0.5


def test_cli_prints_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lore.cli import app

    folder = write_set(tmp_path / "hand", HAND_CORPUS, HAND_QUESTIONS)
    monkeypatch.chdir(tmp_path)  # no project .env
    result = CliRunner().invoke(app, ["eval", "retrieval", "--corpus", str(folder), "--json", "--limit", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["questions"] == 2
    assert report["metrics"]["bm25"]["R@2"] == 1.0

    table = CliRunner().invoke(app, ["eval", "retrieval", "--corpus", str(folder), "--limit", "1"])
    assert table.exit_code == 0, table.output
    assert "hand: 1 questions, 4 passages" in table.stdout
    assert all(method in table.stdout for method in METHODS)

    missing = CliRunner().invoke(app, ["eval", "retrieval", "--corpus", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    assert "missing" in missing.stderr


def test_cross_set_tuning_reports_each_set_with_settings_tuned_elsewhere(
    tmp_path: Path, minilm: SentenceTransformerEmbedder
) -> None:
    from bench.tune_retrieval import tune

    a = write_set(tmp_path / "a", HAND_CORPUS, HAND_QUESTIONS)
    b = write_set(tmp_path / "b", HAND_CORPUS, HAND_QUESTIONS[:2])
    report = tune([a, b], minilm)
    assert report["sets"] == ["a", "b"]
    rows = {(r["set"], r["settings"]): r for r in report["rows"]}
    assert rows[("a", "tuned on b")]["in_set"] is False
    assert rows[("b", "tuned on a")]["in_set"] is False
    assert rows[("a", "tuned on a")]["in_set"] is True
    assert rows[("a", "joint")]["tuned_on"] == ["a", "b"]
    assert rows[("a", "rrf")]["metrics"]["R@2"] == 1.0
    assert report["settings_tried"]["a"] > 1
    with pytest.raises(ValueError, match="two sets"):
        tune([a], minilm)
