"""``lore eval qa``: does the wiki answer questions better than the raw chunks it replaces?

A wiki is built from every document of a folder with the configured model (the real flows: intake,
extraction, grounding, resolution, judge, render, publish, source pages, the search index), in a work
folder laid out as a Lore data folder (``lore.db`` and ``wiki/``). Given ``--workdir``, the folder is kept;
a second run takes the same documents in again (byte-identical files are "known" and cost nothing),
finishes any job a killed run left, and asks the questions against what is there.

Each question of the questions file (the format of ``shared/data/qa/``: ``id``, ``question``,
``answers``, ``gold_docs``, ``kind``) is then asked through the read service (``ReadService.query``,
what ``GET /query`` calls) in three modes of the same run:

- ``default``: what ``/query`` serves (tiers fused: page sections, claims and raw chunks ranked together);
- ``tier3``: raw source chunks only (``tier=3``), the RAG baseline;
- ``wiki``: the wiki's own evidence only (``mode=wiki``: entity pages, page sections and claims).

Scores, per mode, overall and by ``kind``, over the first ``k`` (5) hits:

- ``answer_hit@5``: 1 when a returned passage (a hit's text) or a cited quote contains one of the
  question's answer phrases, compared case-insensitively with whitespace runs collapsed;
- ``source_recall@5``: the fraction of the question's ``gold_docs`` among the documents the hits cite
  (a source hit cites its own document; a section or claim cites its claims' sources), matched on the
  document's file name.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.corpus_bench import corpus_files
from store.models import Source
from synth.deps import SynthDeps
from synth.runner import drain
from workers.sweep import release_dead_leases

MODES = ("default", "tier3", "wiki")
KINDS_ORDER = ("cause", "fix", "impact", "timeline", "lessons")
REQUIRED = ("id", "question", "answers", "gold_docs")

#: Called as (stage, done, total).
Progress = Callable[[str, int, int], None]


class QaInputError(ValueError):
    """The questions file is missing or holds a malformed line."""


def _no_dispatch(job_ids: list[int]) -> None:
    """Jobs are drained in this process; nothing goes to a queue."""


def load_questions(path: Path) -> list[dict[str, Any]]:
    """The questions of a JSONL file in the ``shared/data/qa`` format.

    Raises:
        QaInputError: the file is missing, a line is not a JSON object, or a required key is missing.
    """
    if not path.is_file():
        raise QaInputError(f"no such file: {path}")
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QaInputError(f"{path}:{n}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise QaInputError(f"{path}:{n}: not a JSON object")
        missing = [key for key in REQUIRED if key not in row]
        if missing:
            raise QaInputError(f"{path}:{n}: missing {', '.join(missing)}")
        if not isinstance(row["answers"], list) or not row["answers"]:
            raise QaInputError(f"{path}:{n}: answers must be a non-empty list")
        rows.append(row)
    if not rows:
        raise QaInputError(f"{path}: no questions")
    return rows


def fold(text: str) -> str:
    """Case-folded, whitespace runs collapsed to one space: how answer phrases are compared."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def doc_name(origin: str) -> str:
    """The file name part of a source's origin (gold documents are named by file name)."""
    return origin.replace("\\", "/").rsplit("/", 1)[-1]


def build_wiki(deps: SynthDeps, intake: Callable[[Path, Path], Any], docs: Path, *, limit: int | None = None,
               progress: Progress | None = None) -> dict[str, Any]:
    """Take every document under ``docs`` in and run every job to the end in this process.

    Args:
        deps: the synthesis dependencies (their ``dispatch`` is replaced: jobs run here).
        intake: takes one file in (``Wiring.intake_file``), called as ``intake(path, root)``.
        docs: the folder of documents.
        limit: take only the first ``limit`` documents (sorted by relative path).

    Returns:
        documents, intake statuses, source outcomes (done, failed with reasons, done with a warning)
        and the build's wall seconds.
    """
    files = corpus_files(docs, limit)
    start = time.perf_counter()
    with deps.session_factory() as session, session.begin():
        # This process is the work folder's only worker: jobs a killed run held are due again now.
        release_dead_leases(session)
    intake_status: Counter[str] = Counter()
    for i, path in enumerate(files, start=1):
        intake_status[str(intake(path, docs.resolve()).status)] += 1
        if progress:
            progress("intake", i, len(files))
    inline = replace(deps, dispatch=_no_dispatch)
    finished = 0

    def on_job(job_id: int, outcome: str) -> None:
        nonlocal finished
        finished += 1
        if progress:
            progress("jobs", finished, 0)

    drain(inline, on_job=on_job)
    build_s = time.perf_counter() - start
    with deps.session_factory() as session:
        rows = session.execute(select(Source.origin, Source.status, Source.error, Source.warning)).all()
    current = [r for r in rows if r.status not in ("replaced", "retracted")]
    return {
        "documents": len(files),
        "intake": dict(intake_status),
        "sources": len(current),
        "done": sum(1 for r in current if r.status == "done"),
        "failed": [{"doc": doc_name(r.origin), "reason": r.error} for r in current if r.status == "failed"],
        "warnings": [{"doc": doc_name(r.origin), "warning": r.warning} for r in current if r.warning],
        "unfinished": sorted(doc_name(r.origin) for r in current if r.status not in ("done", "failed")),
        "build_s": round(build_s, 2),
    }


def _passages(hits: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for h in hits:
        out.append(h.text)
        out.extend(c.quote for c in h.citations if c.quote)
    return out


def _cited_docs(hits: Sequence[Any], origins: dict[str, str]) -> set[str]:
    return {doc_name(origins[c.source_id]) for h in hits for c in h.citations if c.source_id in origins}


def score_question(hits: Sequence[Any], question: dict[str, Any], origins: dict[str, str]) -> dict[str, float]:
    """``answer_hit@k`` and ``source_recall@k`` of one question's hits (already cut to ``k``)."""
    text = [fold(p) for p in _passages(hits)]
    answers = [fold(str(a)) for a in question["answers"] if str(a).strip()]
    hit = any(a in p for a in answers for p in text)
    gold = {doc_name(str(g)) for g in question["gold_docs"]}
    cited = _cited_docs(hits, origins)
    recall = len(gold & cited) / len(gold) if gold else 0.0
    return {"answer_hit": float(hit), "source_recall": recall}


def _mean(rows: Sequence[dict[str, float]], key: str) -> float:
    return round(sum(r[key] for r in rows) / len(rows), 4) if rows else 0.0


def summarise(rows: Sequence[dict[str, Any]], k: int) -> dict[str, Any]:
    """Per mode: the two figures overall and by kind."""
    modes: dict[str, Any] = {}
    for mode in MODES:
        scored = [r["modes"][mode] for r in rows]
        by_kind: dict[str, list[dict[str, float]]] = defaultdict(list)
        for r in rows:
            by_kind[str(r.get("kind") or "other")].append(r["modes"][mode])
        kinds = sorted(by_kind, key=lambda x: (KINDS_ORDER.index(x) if x in KINDS_ORDER else 99, x))
        modes[mode] = {
            f"answer_hit@{k}": _mean(scored, "answer_hit"),
            f"source_recall@{k}": _mean(scored, "source_recall"),
            "by_kind": {
                kind: {
                    "questions": len(by_kind[kind]),
                    f"answer_hit@{k}": _mean(by_kind[kind], "answer_hit"),
                    f"source_recall@{k}": _mean(by_kind[kind], "source_recall"),
                }
                for kind in kinds
            },
        }
    return modes


def ask_all(reads: Any, questions: Sequence[dict[str, Any]], origins: dict[str, str], *, k: int = 5,
            progress: Progress | None = None) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every question in every mode; returns the rows and the mean milliseconds per query by mode."""
    rows: list[dict[str, Any]] = []
    spent: dict[str, float] = dict.fromkeys(MODES, 0.0)
    if questions:
        reads.query(questions[0]["question"], k)  # loads the embedder: not any mode's time
    for i, q in enumerate(questions, start=1):
        row: dict[str, Any] = {"id": q["id"], "kind": q.get("kind"), "modes": {}}
        for mode in MODES:
            start = time.perf_counter()
            if mode == "tier3":
                answer = reads.query(q["question"], k, 3)
            elif mode == "wiki":
                answer = reads.query(q["question"], k, None, mode="wiki")
            else:
                answer = reads.query(q["question"], k)
            spent[mode] += time.perf_counter() - start
            hits = list(answer.hits)[:k]
            scored = score_question(hits, q, origins)
            scored["from"] = [h.kind for h in hits]  # type: ignore[assignment]
            row["modes"][mode] = scored
        rows.append(row)
        if progress:
            progress("questions", i, len(questions))
    ms = {mode: round(1000 * spent[mode] / max(1, len(questions)), 2) for mode in MODES}
    return rows, ms


def origins_of(session_factory: Any) -> dict[str, str]:
    """Source id -> origin (the name the document arrived under), for every source."""
    with session_factory() as session:
        return dict(session.execute(select(Source.id, Source.origin)).all())


def run_qa_eval(
    docs: Path,
    questions_path: Path,
    *,
    deps: SynthDeps,
    intake: Callable[[Path, Path], Any],
    reads: Any,
    k: int = 5,
    limit: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build the wiki from ``docs``, ask every question of ``questions_path`` in every mode, score.

    Args:
        deps: synthesis dependencies of the work folder (model client, store, ledger, search index).
        intake: ``Wiring.intake_file`` of the same folder.
        reads: the read service (``api.reads.ReadService``) over the same ledger, store and index.
        limit: build from the first ``limit`` documents only, and ask only the questions all of whose
            gold documents are among them (the others are counted in ``questions_skipped``).

    Returns:
        ``questions``, ``modes`` (``default``, ``tier3``, ``wiki``: ``answer_hit@5``,
        ``source_recall@5``, ``by_kind``), ``wall_s``, plus the build's outcome, ``ms_per_query`` per
        mode and every question's ``rows``.
    """
    questions = load_questions(questions_path)
    taken = {doc_name(p.name) for p in corpus_files(docs, limit)}
    asked = [q for q in questions if {doc_name(str(g)) for g in q["gold_docs"]} <= taken]
    skipped = len(questions) - len(asked)
    if not asked:
        raise QaInputError("no question has all its gold documents among the documents taken in")
    questions = asked
    start = time.perf_counter()
    build = build_wiki(deps, intake, docs, limit=limit, progress=progress)
    rows, ms = ask_all(reads, questions, origins_of(deps.session_factory), k=k, progress=progress)
    return {
        "docs": str(docs),
        "questions_file": str(questions_path),
        "questions": len(questions),
        "questions_skipped": skipped,
        "limit": limit,
        "k": k,
        "modes": summarise(rows, k),
        "wall_s": round(time.perf_counter() - start, 2),
        "build": build,
        "ms_per_query": ms,
        "rows": rows,
    }
