"""Dense side of the search index: chunk vectors held in memory, one matrix per chunk kind.

A chunk's ``embedding`` column holds one or more float32 rows of the embedder's width: row 0 embeds the
whole chunk (title and text); further rows, present when the text is longer than a window, embed
windows of it (title plus a few sentences). A chunk scores ``(1 - w) * whole + w * best row``:
one passage that mentions the query's subject in a single sentence among unrelated ones is still
found, and the whole-chunk vector keeps the overall topic.

The cache of a kind is keyed by a generation token that every write to that kind changes (kept in
``index_state``). When the token moved, only ``(id, content_hash)`` pairs are read, and only vectors
of new or changed chunks are loaded; removed chunks are dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Connection, bindparam, text

from search.errors import IndexMismatch

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import NDArray


def pack(vectors: NDArray[np.float32]) -> bytes:
    """Serialise a ``(rows, dim)`` float32 matrix for ``chunks.embedding``."""
    return np.ascontiguousarray(vectors, dtype="<f4").tobytes()


def unpack(blob: bytes, dim: int) -> NDArray[np.float32]:
    """Inverse of :func:`pack`.

    Raises:
        IndexMismatch: the blob is not a whole number of ``dim``-wide rows.
    """
    arr = np.frombuffer(blob, dtype="<f4")
    if dim <= 0 or arr.size == 0 or arr.size % dim:
        raise IndexMismatch(f"stored vector of {arr.size} floats does not fit width {dim}")
    return arr.reshape(-1, dim).astype(np.float32, copy=False)


@dataclass
class _KindMatrix:
    """All vectors of one kind in one matrix; ``spans[id]`` are that chunk's rows."""

    dim: int
    token: str | None = None
    loaded: bool = False
    ids: list[int] = field(default_factory=list)
    hashes: dict[int, str] = field(default_factory=dict)
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)
    matrix: NDArray[np.float32] = field(init=False)
    whole_rows: NDArray[np.intp] = field(init=False)  # position -> row of its whole-chunk vector

    def __post_init__(self) -> None:
        self.replace({}, {})

    def replace(self, blocks: dict[int, NDArray[np.float32]], hashes: dict[int, str]) -> None:
        """Make ``blocks`` (id -> rows) the whole content of this kind."""
        self.ids = sorted(blocks)
        self.hashes = hashes
        counts = np.array([blocks[i].shape[0] for i in self.ids], dtype=np.intp)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp) if len(counts) else counts
        self.matrix = (
            np.ascontiguousarray(np.vstack([blocks[i] for i in self.ids]), dtype=np.float32)
            if self.ids
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        self.whole_rows = starts
        self.spans = {i: (int(a), int(a + n)) for i, a, n in zip(self.ids, starts, counts, strict=True)}

    def rows(self, chunk_id: int) -> NDArray[np.float32] | None:
        span = self.spans.get(chunk_id)
        return None if span is None else self.matrix[span[0] : span[1]]


class DenseCache:
    """Per-kind in-memory matrices of chunk vectors, refreshed incrementally from the database."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._kinds: dict[str, _KindMatrix] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Forget everything (the next search reloads)."""
        with self._lock:
            self._kinds.clear()

    def refresh(self, conn: Connection, kind: str, token: str | None) -> None:
        """Bring the matrix of ``kind`` up to the generation ``token`` read from the database."""
        with self._lock:
            km = self._kinds.setdefault(kind, _KindMatrix(self.dim))
            if km.loaded and km.token == token:
                return
            rows = conn.execute(
                text("SELECT id, content_hash FROM chunks WHERE kind = :k AND embedding IS NOT NULL"),
                {"k": kind},
            ).all()
            current = {int(r[0]): str(r[1]) for r in rows}
            blocks: dict[int, NDArray[np.float32]] = {}
            hashes: dict[int, str] = {}
            wanted = []
            for cid, chash in current.items():
                kept = km.rows(cid) if km.hashes.get(cid) == chash else None
                if kept is None:
                    wanted.append(cid)
                else:
                    blocks[cid], hashes[cid] = kept, chash
            stmt = text("SELECT id, content_hash, embedding FROM chunks WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            )
            for start in range(0, len(wanted), 500):
                for cid, chash, blob in conn.execute(stmt, {"ids": wanted[start : start + 500]}):
                    if blob is not None:
                        blocks[int(cid)], hashes[int(cid)] = unpack(bytes(blob), self.dim), str(chash)
            km.replace(blocks, hashes)
            km.token, km.loaded = token, True

    def scores(
        self, kinds: Sequence[str], query: NDArray[np.float32], window_weight: float
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Chunk ids of ``kinds`` and their similarity to ``query`` (a unit vector)."""
        all_ids: list[NDArray[np.int64]] = []
        all_scores: list[NDArray[np.float32]] = []
        with self._lock:
            for kind in kinds:
                km = self._kinds.get(kind)
                if km is None or not km.ids:
                    continue
                sims = km.matrix @ query
                whole = sims[km.whole_rows]
                # Rows of a chunk are contiguous: the best of each run. A chunk without windows has
                # only its whole vector, which is then its best row too.
                best = np.maximum.reduceat(sims, km.whole_rows)
                score = (1.0 - window_weight) * whole + window_weight * best
                all_ids.append(np.asarray(km.ids, dtype=np.int64))
                all_scores.append(score.astype(np.float32))
        if not all_ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.concatenate(all_ids), np.concatenate(all_scores)

    def whole_vectors(self, chunk_ids: Sequence[int]) -> dict[int, NDArray[np.float32]]:
        """Whole-chunk vectors (row 0) of the given chunks that are cached."""
        out: dict[int, NDArray[np.float32]] = {}
        with self._lock:
            for cid in chunk_ids:
                for km in self._kinds.values():
                    rows = km.rows(cid)
                    if rows is not None:
                        out[cid] = rows[0].copy()
                        break
        return out
