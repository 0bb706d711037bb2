"""Choosing the retriever's query-time settings without grading them on the questions they were tuned on.

``lore eval tune-retrieval --set A --set B --json`` indexes each set once (``bench.eval_retrieval``'s
format), then:

1. **per set**: coordinate descent over the query-time settings of :class:`search.index.SearchConfig`
   (``GRID``; index-time settings such as the window size stay fixed), maximising the hybrid
   ranking's Recall@5 on that set alone (MRR breaks ties; on a tie the earlier value, nearer the
   product's defaults, stays);
2. **cross-set**: the settings tuned on one set are scored on every other set, beside the in-set
   figures and beside plain RRF on the same index, so the table shows what tuning buys on questions it
   never saw;
3. **joint**: the same descent on the worst margin over RRF across all the sets (a setting must win
   on each, not big on one); these are the candidate defaults, and their per-set figures are in-set,
   which the report says (``tuned_on``). The cross-set rows estimate how such a choice fares on new
   questions.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from bench.eval_retrieval import build_index, load_corpus, load_questions, mean_metrics, question_metrics
from search.embedding import Embedder
from search.fusion import rrf, top
from search.index import SearchConfig, SearchIndex
from store.db import make_engine
from store.models import Base, Chunk

#: Query-time settings tried, each list in the order values are tried (the default first).
GRID: dict[str, tuple[Any, ...]] = {
    "bm25_weight": (0.4, 0.2, 0.3, 0.5, 0.6),
    "feedback_docs": (3, 0, 2, 5),
    "feedback_terms": (10, 5, 20),
    "rocchio_beta": (0.5, 0.0, 0.25, 1.0),
    "window_weight": (0.5, 0.3, 0.7),
    "phrases": (True, False),
}
ROUNDS = 2
DEPTH = 100
Log = Callable[[str], None]


@dataclass
class Prepared:
    """One set indexed once; every setting is scored on this index."""

    name: str
    engine: Engine
    index: SearchIndex
    refs: dict[int, str]
    questions: list[dict[str, Any]]
    rrf: dict[str, float]


def prepare(folder: Path, embedder: Embedder, workdir: Path) -> Prepared:
    """Index the set in ``workdir`` and score plain RRF (bm25 + dense lists, k = 60) once."""
    engine = make_engine(f"sqlite:///{workdir / (folder.name + '.db')}")
    Base.metadata.create_all(engine)
    index = SearchIndex(engine, embedder, SearchConfig())
    index.ensure_index()
    build_index(load_corpus(folder), index)
    with engine.connect() as conn:
        refs = {int(i): str(r) for i, r in conn.execute(select(Chunk.id, Chunk.ref))}
        conn.rollback()
    questions = load_questions(folder)
    rows = []
    for q in questions:
        text = str(q["question"])
        lists = [[i for i, _ in index.rank(text, DEPTH, ("source",), mode)] for mode in ("bm25", "dense")]
        rows.append(question_metrics([refs[i] for i in top(rrf(lists, k=60), DEPTH)], [str(g) for g in q["gold_ids"]]))
    return Prepared(folder.name, engine, index, refs, questions, mean_metrics(rows))


def score(p: Prepared, cfg: SearchConfig) -> dict[str, float]:
    """Mean metrics of the hybrid ranking with ``cfg`` on one prepared set."""
    p.index.config = cfg
    rows = []
    for q in p.questions:
        ranked = [p.refs[i] for i, _ in p.index.rank(str(q["question"]), DEPTH, ("source",), "hybrid")]
        rows.append(question_metrics(ranked, [str(g) for g in q["gold_ids"]]))
    return mean_metrics(rows)


def descend(
    objective: Callable[[SearchConfig], tuple[float, float]], start: SearchConfig, log: Log
) -> tuple[SearchConfig, int]:
    """Coordinate descent over ``GRID`` from ``start``; returns the best setting and settings tried."""
    best, best_value = start, objective(start)
    tried = 1
    for _ in range(ROUNDS):
        moved = False
        for name, values in GRID.items():
            for value in values:
                if getattr(best, name) == value:
                    continue
                cand = replace(best, **{name: value})
                got = objective(cand)
                tried += 1
                if got > best_value:
                    best, best_value, moved = cand, got, True
                    log(f"  {name}={value}: R@5 objective {got[0]:.4f}")
        if not moved:
            break
    return best, tried


def tune(folders: Sequence[Path], embedder: Embedder, log: Log = lambda _m: None) -> dict[str, Any]:
    """Run the procedure of the module docstring on the sets in ``folders``; a JSON-ready report."""
    if len(folders) < 2:
        raise ValueError("cross-set tuning needs at least two sets")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lore-tune-") as tmp:
        sets = [prepare(Path(f), embedder, Path(tmp)) for f in folders]
        try:
            default = SearchConfig()
            memo: dict[tuple[str, str], dict[str, float]] = {}

            def cached(p: Prepared, cfg: SearchConfig) -> dict[str, float]:
                key = (p.name, repr(cfg))
                if key not in memo:
                    memo[key] = score(p, cfg)
                return memo[key]

            tuned: dict[str, SearchConfig] = {}
            tried: dict[str, int] = {}
            for p in sets:
                log(f"tuning on {p.name}")
                tuned[p.name], tried[p.name] = descend(
                    lambda c, p=p: (cached(p, c)["R@5"], cached(p, c)["MRR"]), default, log
                )

            def worst_margin(cfg: SearchConfig) -> tuple[float, float]:
                margins = [cached(p, cfg)["R@5"] - p.rrf["R@5"] for p in sets]
                return min(margins), sum(margins)

            log("tuning on all sets (worst margin over RRF)")
            joint, tried["joint"] = descend(worst_margin, default, log)
            rows = []
            for p in sets:
                rows.append({"set": p.name, "settings": "rrf", "tuned_on": [], "metrics": p.rrf})
                rows.append({"set": p.name, "settings": "defaults", "tuned_on": None, "metrics": cached(p, default)})
                for source, cfg in tuned.items():
                    rows.append(
                        {
                            "set": p.name,
                            "settings": f"tuned on {source}",
                            "tuned_on": [source],
                            "in_set": source == p.name,
                            "metrics": cached(p, cfg),
                        }
                    )
                rows.append(
                    {
                        "set": p.name,
                        "settings": "joint",
                        "tuned_on": [s.name for s in sets],
                        "in_set": True,
                        "metrics": cached(p, joint),
                    }
                )
        finally:
            for p in sets:
                p.engine.dispose()
    return {
        "sets": [p.name for p in sets],
        "objective": "hybrid Recall@5 (MRR breaks ties); joint: the worst R@5 margin over RRF across sets",
        "grid": {k: list(v) for k, v in GRID.items()},
        "settings_tried": tried,
        "defaults": asdict(SearchConfig()),
        "tuned": {name: _diff(cfg) for name, cfg in tuned.items()},
        "joint": _diff(joint),
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _diff(cfg: SearchConfig) -> dict[str, Any]:
    """The settings of ``cfg`` that differ from the product's defaults."""
    base = asdict(SearchConfig())
    return {k: v for k, v in asdict(cfg).items() if base[k] != v}
