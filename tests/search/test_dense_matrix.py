"""The per-kind vector matrix changes in place: appends into spare room, marks dropped rows dead,
compacts when they pile up, and always scores like a matrix built from scratch."""

from __future__ import annotations

import numpy as np

from search.dense import _KindMatrix


def _unit(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _expected(blocks: dict[int, np.ndarray], query: np.ndarray, w: float) -> dict[int, float]:
    return {cid: float((1 - w) * (b[0] @ query) + w * (b @ query).max()) for cid, b in blocks.items()}


def test_incremental_updates_score_like_a_fresh_matrix() -> None:
    rng = np.random.default_rng(3)
    dim, w = 8, 0.5
    km = _KindMatrix(dim)
    live: dict[int, np.ndarray] = {}
    next_id = 0
    for step in range(40):
        added = {}
        for _ in range(int(rng.integers(1, 30))):
            added[next_id] = _unit(rng, int(rng.integers(1, 4)), dim)
            next_id += 1
        removed = {int(c) for c in rng.choice(list(live), size=min(len(live), 10), replace=False)} if live else set()
        changed = next(iter(live), None)
        if changed is not None and changed not in removed:
            removed.add(changed)
            added[changed] = _unit(rng, 2, dim)  # a changed chunk: dropped, then added again
        km.update(added, dict.fromkeys(added, f"h{step}"), removed)
        for c in removed:
            live.pop(c, None)
        live.update(added)
        query = _unit(rng, 1, dim)[0]
        ids, scores = km.scores(query, w)
        got = dict(zip(ids.tolist(), scores.tolist(), strict=True))
        want = _expected(live, query, w)
        assert set(got) == set(want), step
        assert all(abs(got[c] - want[c]) < 1e-5 for c in want), step
        assert set(km.ids) == set(live)
        for c in list(live)[:3]:
            assert np.allclose(km.rows(c), live[c])
    assert km.matrix.flags["C_CONTIGUOUS"]
    assert km.matrix.dtype == np.float32
    assert km.dead <= max(64, len(km.chunk_ids) // 4), "dead rows are compacted away"
    assert km.used <= km.matrix.shape[0]
