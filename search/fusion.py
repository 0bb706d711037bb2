"""Rank fusion for hybrid search: pure functions over ``{id: score}`` maps.

``fuse`` (the product default) is a convex combination of min-max normalised scores, which keeps how
far ahead a result is in each list; Bruch, Gai and Ingber ("An Analysis of Fusion Functions for Hybrid
Retrieval", ACM TOIS 2023) found it at least as good as reciprocal rank fusion once normalised. ``rrf``
is reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009), kept as the baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def rrf(rankings: Iterable[Sequence[int]], k: int = 60, weights: Sequence[float] | None = None) -> dict[int, float]:
    """Reciprocal rank fusion: ``sum_i w_i / (k + rank_i)`` with ranks starting at 1.

    Args:
        rankings: lists of ids, best first.
        k: the damping constant (60 in Cormack et al.).
        weights: one weight per list (default 1 each).

    Returns:
        Fused score per id (higher is better).

    Raises:
        ValueError: the number of weights differs from the number of rankings.
    """
    lists = list(rankings)
    ws = list(weights) if weights is not None else [1.0] * len(lists)
    if len(ws) != len(lists):
        raise ValueError("one weight per ranking")
    out: dict[int, float] = {}
    for w, ranking in zip(ws, lists, strict=True):
        for rank, item in enumerate(ranking, start=1):
            out[item] = out.get(item, 0.0) + w / (k + rank)
    return out


def minmax(scores: dict[int, float]) -> dict[int, float]:
    """Scale scores to [0, 1] (best 1, worst 0); one score, or all equal, become 1."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi - lo <= 1e-12:
        return dict.fromkeys(scores, 1.0)
    return {i: (s - lo) / (hi - lo) for i, s in scores.items()}


def fuse(lexical: dict[int, float], dense: dict[int, float], bm25_weight: float) -> dict[int, float]:
    """``bm25_weight * lexical + (1 - bm25_weight) * dense`` on min-max normalised scores.

    A result missing from one list scores 0 there (it was below that list's pool).
    """
    if not 0.0 <= bm25_weight <= 1.0:
        raise ValueError("bm25_weight must be within [0, 1]")
    a, b = minmax(lexical), minmax(dense)
    return {i: bm25_weight * a.get(i, 0.0) + (1 - bm25_weight) * b.get(i, 0.0) for i in a.keys() | b.keys()}


def top(scores: dict[int, float], n: int) -> list[int]:
    """Ids of the ``n`` best scores; ties go to the lower id so results are deterministic."""
    return [i for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
