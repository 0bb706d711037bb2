"""Retrieval quality on a corpus in the generic format of ``shared/data/README.md``.

``corpus.jsonl`` holds ``{"id", "title", "text"}`` passages and ``questions.jsonl`` holds
``{"id", "question", "answers", "gold_ids"}``. Every passage becomes one ``kind="source"`` chunk of a
fresh temporary SQLite index (``ref`` = passage id); every question is then answered by four rankings
computed in the same run:

- ``hybrid``: the product's retriever (``SearchIndex`` defaults: fused lists plus one feedback pass);
- ``bm25``: its lexical list alone; ``dense``: its vector list alone;
- ``rrf``: reciprocal rank fusion (k = 60) of those two lists, the usual baseline.

Timings: ``index_s`` is the time to embed and index the corpus; ``query_embedding_ms`` the mean time to
embed a question; ``<method>_ms_per_query`` the mean ranking time after that (RRF includes both of its
lists).

Metrics, averaged over questions: Recall@k = |gold ∩ top k| / |gold|; Full@k = 1 when every gold id is
in the top k; MRR = 1 / rank of the first gold id, 0 when it is not in the first 100.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import select

from search.embedding import Embedder
from search.fusion import rrf, top
from search.index import TUNED_ON, ChunkInput, SearchConfig, SearchIndex
from store.db import make_engine
from store.models import Base, Chunk

RECALL_AT = (2, 5, 10)
FULL_AT = (5, 10)
MRR_DEPTH = 100
METHODS = ("hybrid", "bm25", "dense", "rrf")
BATCH = 64

#: Called as (stage, done, total) while passages are embedded.
Progress = Callable[[str, int, int], None]


class EvalInputError(ValueError):
    """The corpus folder is missing a file or holds malformed lines."""


def _read_jsonl(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        raise EvalInputError(f"missing {path}")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalInputError(f"{path}:{n}: not JSON ({exc.msg})") from None
            missing = [k for k in required if k not in row]
            if missing:
                raise EvalInputError(f"{path}:{n}: missing {', '.join(missing)}")
            rows.append(row)
    return rows


def load_corpus(folder: Path) -> list[dict[str, Any]]:
    """Passages of ``folder/corpus.jsonl``."""
    return _read_jsonl(Path(folder) / "corpus.jsonl", ("id", "text"))


def load_questions(folder: Path) -> list[dict[str, Any]]:
    """Questions of ``folder/questions.jsonl``."""
    return _read_jsonl(Path(folder) / "questions.jsonl", ("id", "question", "gold_ids"))


def question_metrics(ranked: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    """Recall@k, Full@k and reciprocal rank of one ranking against its gold ids.

    Args:
        ranked: passage ids, best first (duplicates count once, at their first position).
        gold: the supporting passage ids (at least one).

    Returns:
        ``{"R@2", "R@5", "R@10", "Full@5", "Full@10", "MRR"}``.
    """
    wanted = set(gold)
    if not wanted:
        raise ValueError("a question needs at least one gold id")
    order = list(dict.fromkeys(ranked))
    out: dict[str, float] = {}
    for k in RECALL_AT:
        out[f"R@{k}"] = len(wanted & set(order[:k])) / len(wanted)
    for k in FULL_AT:
        out[f"Full@{k}"] = 1.0 if wanted <= set(order[:k]) else 0.0
    out["MRR"] = next((1.0 / r for r, pid in enumerate(order[:MRR_DEPTH], start=1) if pid in wanted), 0.0)
    return out


def mean_metrics(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Average of per-question metrics (rounded to 4 places)."""
    if not rows:
        return {}
    return {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in rows[0]}


def build_index(corpus: Sequence[dict[str, Any]], index: SearchIndex, progress: Progress | None = None) -> None:
    """Index every passage as a ``source`` chunk, in batches."""
    for start in range(0, len(corpus), BATCH):
        batch = corpus[start : start + BATCH]
        index.upsert(
            [ChunkInput("source", str(p["id"]), 0, str(p["text"]), title=str(p.get("title") or "")) for p in batch]
        )
        if progress is not None:
            progress("embedding passages", min(start + BATCH, len(corpus)), len(corpus))


def evaluate(
    corpus_dir: Path,
    embedder: Embedder,
    *,
    limit: int | None = None,
    config: SearchConfig | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Index the corpus in a temporary database and score every method on the questions.

    Args:
        corpus_dir: folder with ``corpus.jsonl`` and ``questions.jsonl``.
        embedder: the sentence embedder (all-MiniLM-L6-v2 in the product).
        limit: score only the first ``limit`` questions (the whole corpus is still indexed).
        config: ranking parameters (default: the product's).
        progress: optional callback (stage, done, total).

    Returns:
        A JSON-ready report: counts, configuration, ``tuned_on`` (the sets the default settings were chosen
        on; empty for a ``config`` passed in), metrics per method, timings.

    Raises:
        EvalInputError: missing or malformed input files.
    """
    corpus_dir = Path(corpus_dir)
    corpus = load_corpus(corpus_dir)
    questions = load_questions(corpus_dir)
    if limit is not None:
        questions = questions[: max(limit, 0)]
    cfg = config or SearchConfig()
    depth = max(MRR_DEPTH, cfg.pool)
    timings: dict[str, float] = {}
    per_method: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    with tempfile.TemporaryDirectory(prefix="lore-eval-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'eval.db'}")
        try:
            Base.metadata.create_all(engine)
            index = SearchIndex(engine, embedder, cfg)
            t0 = time.perf_counter()
            index.ensure_index()
            build_index(corpus, index, progress)
            timings["index_s"] = round(time.perf_counter() - t0, 2)
            with engine.connect() as conn:
                refs = {int(i): str(r) for i, r in conn.execute(select(Chunk.id, Chunk.ref))}
                conn.rollback()
            spent = dict.fromkeys(METHODS, 0.0)
            embedding_s = 0.0
            for n, q in enumerate(questions, start=1):
                gold = [str(g) for g in q["gold_ids"]]
                lists: dict[str, list[int]] = {}
                took: dict[str, float] = {}
                # Embed the question once, timed on its own; every ranking below reuses the vector.
                t = time.perf_counter()
                index.query_vector(str(q["question"]))
                embedding_s += time.perf_counter() - t
                for mode in ("bm25", "dense", "hybrid"):
                    t = time.perf_counter()
                    lists[mode] = [i for i, _ in index.rank(str(q["question"]), depth, ("source",), mode)]
                    took[mode] = time.perf_counter() - t
                t = time.perf_counter()
                lists["rrf"] = top(rrf([lists["bm25"], lists["dense"]], k=60), depth)
                # RRF costs both lists plus the fusion itself.
                took["rrf"] = took["bm25"] + took["dense"] + time.perf_counter() - t
                for m in METHODS:
                    spent[m] += took[m]
                for m in METHODS:
                    per_method[m].append(question_metrics([refs[i] for i in lists[m]], gold))
                if progress is not None:
                    progress("answering questions", n, len(questions))
        finally:
            engine.dispose()
    count = max(len(questions), 1)
    timings["query_embedding_ms"] = round(1000 * embedding_s / count, 2)
    timings.update({f"{m}_ms_per_query": round(1000 * spent[m] / count, 2) for m in METHODS})
    return {
        "corpus": corpus_dir.name,
        "passages": len(corpus),
        "questions": len(questions),
        "embedder": embedder.name,
        "config": asdict(cfg),
        "tuned_on": list(TUNED_ON) if config is None else [],
        "metrics": {m: mean_metrics(per_method[m]) for m in METHODS},
        "timings": timings,
    }
