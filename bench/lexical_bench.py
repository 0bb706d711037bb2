"""The lexical side of the search index, in memory against SQLite FTS5, on the same chunks.

``python -m bench.lexical_bench --chunks 50000 --set ../shared/data/retrieval/musique-100 --set
../shared/data/retrieval/ramdocs-dev`` builds a SQLite database of ``--chunks`` source chunks made from
the sets' passages (the passages themselves, then random windows of them so that copies differ), fills
the full-text table, loads ``search.lexical_cache.LexicalCache`` from it, and asks both sides every
question of the sets for their best 100 chunks, as ``SearchIndex.rank(mode="bm25")`` does. No model is
loaded. It reports the load time and memory of the in-memory index, per-query latency of each side, and
how many questions got the same first 10 chunks in the same order from both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from search.index import KINDS, ensure_index
from search.lexical import TITLE_WEIGHT, LexicalBackend
from search.lexical_cache import LexicalCache
from search.text import query_terms
from store import search_state
from store.db import make_engine, read_only
from store.models import Base, Chunk


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _summary(ms: list[float]) -> dict[str, float]:
    """p50, p99 and mean of latencies in milliseconds."""
    ordered = sorted(ms)
    if not ordered:
        return {"p50": 0.0, "p99": 0.0, "mean": 0.0}

    def at(q: float) -> float:
        return round(ordered[int(q * (len(ordered) - 1))], 3)

    return {"p50": at(0.5), "p99": at(0.99), "mean": round(statistics.fmean(ordered), 3)}


def run(sets: Sequence[Path], chunks: int, depth: int = 100, seed: int = 1) -> dict[str, Any]:
    """Build the corpus, load both sides and time every question (see the module docstring).

    Args:
        sets: folders with ``corpus.jsonl`` (``title``, ``text``) and ``questions.jsonl`` (``question``).
        chunks: how many source chunks to index.
        depth: chunks asked of each side per question.
        seed: for the passage windows.

    Returns:
        A JSON-ready report.
    """
    passages = [p for s in sets for p in _read(Path(s) / "corpus.jsonl")]
    questions = [str(q["question"]) for s in sets for q in _read(Path(s) / "questions.jsonl")]
    rng = random.Random(seed)
    rows = []
    for i in range(chunks):
        p = passages[i % len(passages)]
        words = str(p["text"]).split()
        if i >= len(passages):
            start = rng.randrange(max(len(words) - 20, 1))
            words = words[start : start + rng.randint(20, 120)]
        title, body = str(p.get("title", "")), " ".join(words)
        digest = hashlib.sha256(f"{title}\x00{body}".encode()).hexdigest()
        rows.append({"kind": "source", "ref": f"r{i}", "ordinal": 0, "title": title, "text": body,
                     "citations": {}, "content_hash": digest})  # fmt: skip
    fts = LexicalBackend("sqlite")
    mem_ms: list[float] = []
    sql_ms: list[float] = []
    same_top10 = 0
    with tempfile.TemporaryDirectory(prefix="lore-lexical-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            Base.metadata.create_all(engine)
            ensure_index(engine)
            with engine.begin() as conn:
                for start in range(0, len(rows), 2000):
                    conn.execute(insert(Chunk), rows[start : start + 2000])
                fts.rebuild(conn)
                search_state.touch(conn, KINDS)
            readers = read_only(engine)
            cache = LexicalCache(TITLE_WEIGHT)
            t = time.perf_counter()
            with readers.connect() as conn:
                for kind, token in search_state.generations(conn, KINDS).items():
                    cache.refresh(conn, kind, token)
                conn.rollback()
            load_s = time.perf_counter() - t
            with readers.connect() as conn:
                for question in questions:
                    qt = query_terms(question)
                    stems = [x.stem for x in qt.terms]
                    pairs = [(a.stem, b.stem) for a, b in qt.phrases]
                    t = time.perf_counter()
                    memory = cache.search(("source",), stems, pairs, depth, KINDS)
                    mem_ms.append(1000 * (time.perf_counter() - t))
                    t = time.perf_counter()
                    sql = fts.search(conn, qt.terms, qt.phrases, ("source",), depth)
                    sql_ms.append(1000 * (time.perf_counter() - t))
                    same_top10 += [i for i, _ in memory[:10]] == [i for i, _ in sql[:10]]
                conn.rollback()
        finally:
            engine.dispose()
    return {
        "chunks": chunks,
        "questions": len(questions),
        "depth": depth,
        "load_s": round(load_s, 2),
        "index": cache.stats(),
        "memory_ms": _summary(mem_ms),
        "fts5_ms": _summary(sql_ms),
        "same_top10_order": same_top10,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bench.lexical_bench``: print the report of :func:`run` as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.lexical_bench")
    parser.add_argument("--set", dest="sets", type=Path, action="append", required=True)
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--depth", type=int, default=100)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.sets, args.chunks, args.depth), indent=2))


if __name__ == "__main__":
    main()
