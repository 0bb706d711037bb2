"""`lore eval qa`: questions file checks, the scores' definitions, and a whole run with the fake model server
on a few DFDS postmortems (mechanics only; the embedded model's figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.eval_qa import MODES, QaInputError, load_questions, score_question, summarise
from lore.cli import app
from store.queries import Citation

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DOCS = SHARED / "ops" / "dfds-postmortems" / "docs"
QUESTIONS = SHARED / "qa" / "dfds-postmortems-qa.jsonl"
needs_data = pytest.mark.skipif(not QUESTIONS.is_file(), reason="../shared/data is not beside the checkout")


class _Hit:
    def __init__(self, text: str, cites: list[Citation]) -> None:
        self.text, self.citations, self.kind = text, tuple(cites), "source"


def _cite(source_id: str, quote: str, claim_id: str | None = None) -> Citation:
    return Citation(claim_id=claim_id, text="", quote=quote, status="active", source_id=source_id,
                    source_title=source_id, source_slug=source_id, source_page=f"wiki/sources/{source_id}.md",
                    source_status="done")


def test_an_answer_phrase_counts_in_a_passage_or_a_quote_whatever_its_case_and_spacing():
    q = {"answers": ["Terraform AWS  provider", "never there"], "gold_docs": ["a/PM-1.md", "PM-2.md"]}
    origins = {"s1": "PM-1.md", "s2": "sub/PM-2.md", "s3": "PM-3.md"}
    in_text = [_Hit("the terraform aws\nprovider changed", [_cite("s3", "")])]
    assert score_question(in_text, q, origins) == {"answer_hit": 1.0, "source_recall": 0.0}
    in_quote = [_Hit("a section", [_cite("s1", "The Terraform AWS provider, 3.45", "c1")])]
    assert score_question(in_quote, q, origins) == {"answer_hit": 1.0, "source_recall": 0.5}
    miss = [_Hit("Terraform", [_cite("s1", "x"), _cite("s2", "y")])]
    assert score_question(miss, q, origins) == {"answer_hit": 0.0, "source_recall": 1.0}


def test_summary_by_kind():
    rows = [
        {"kind": "cause", "modes": dict.fromkeys(MODES, {"answer_hit": 1.0, "source_recall": 1.0})},
        {"kind": "fix", "modes": dict.fromkeys(MODES, {"answer_hit": 0.0, "source_recall": 0.5})},
    ]
    modes = summarise(rows, 5)
    assert modes["default"]["answer_hit@5"] == 0.5
    assert modes["tier3"]["source_recall@5"] == 0.75
    assert list(modes["wiki"]["by_kind"]) == ["cause", "fix"]
    assert modes["wiki"]["by_kind"]["fix"] == {"questions": 1, "answer_hit@5": 0.0, "source_recall@5": 0.5}


def test_a_bad_questions_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "x", "answers": ["y"], "gold_docs": []}\n{"id": "b"}\n')
    with pytest.raises(QaInputError, match=r"q.jsonl:2: missing question"):
        load_questions(path)
    path.write_text("not json\n")
    with pytest.raises(QaInputError, match="not JSON"):
        load_questions(path)
    with pytest.raises(QaInputError, match="no such file"):
        load_questions(tmp_path / "nowhere.jsonl")


@needs_data
def test_a_whole_run_with_the_fake_model_then_again_on_the_kept_wiki(tmp_path):
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    chosen = [q for q in questions if q["id"] in ("q01", "q02", "q03", "q05", "q06")]
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in sorted({g for q in chosen for g in q["gold_docs"]}):
        shutil.copy(DOCS / name, docs / name)
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in chosen))
    work = tmp_path / "work"
    args = ["eval", "qa", "--fake", "--docs", str(docs), "--questions", str(qfile), "--workdir", str(work), "--json"]

    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)
    assert result["questions"] == 5
    assert isinstance(result["wall_s"], float)
    assert set(result["modes"]) == {"default", "tier3", "wiki"}
    for figures in result["modes"].values():
        assert 0.0 <= figures["answer_hit@5"] <= 1.0
        assert 0.0 <= figures["source_recall@5"] <= 1.0
        assert sum(v["questions"] for v in figures["by_kind"].values()) == 5
    assert result["build"]["done"] == result["build"]["documents"] == len(list(docs.iterdir()))
    assert result["build"]["intake"] == {"new": result["build"]["documents"]}
    # Raw chunks are the documents' own text: with each question's gold document in a 5-document wiki,
    # the RAG baseline finds the answer or at least the document for most of them.
    assert result["modes"]["tier3"]["source_recall@5"] >= 0.6

    again = CliRunner().invoke(app, [*args, "--rows"])
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert second["build"]["intake"] == {"known": result["build"]["documents"]}  # the kept wiki, not rebuilt
    assert second["modes"] == result["modes"]
    assert [r["id"] for r in second["rows"]] == ["q01", "q02", "q03", "q05", "q06"]
