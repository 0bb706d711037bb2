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
    """All vectors of one kind in one contiguous float32 matrix, changed in place.

    Rows are appended into spare capacity (doubling when full), so adding chunks copies only their
    own vectors; a dropped or changed chunk's rows are marked dead and skipped, and the matrix is
    compacted once dead rows pass a quarter of it. ``spans[id]`` are a live chunk's rows.
    """

    dim: int
    token: str | None = None
    loaded: bool = False
    hashes: dict[int, str] = field(default_factory=dict)
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)
    matrix: NDArray[np.float32] = field(init=False)
    used: int = 0  # rows of ``matrix`` in use (live or dead)
    chunk_ids: list[int] = field(default_factory=list)  # position -> chunk id
    starts: list[int] = field(default_factory=list)  # position -> row of its whole-chunk vector
    alive: list[bool] = field(default_factory=list)  # position -> chunk still current
    dead: int = 0
    _arrays: tuple[NDArray[np.int64], NDArray[np.intp], NDArray[np.bool_]] | None = None

    def __post_init__(self) -> None:
        self.matrix = np.zeros((0, self.dim), dtype=np.float32)

    @property
    def ids(self) -> list[int]:
        """Live chunk ids."""
        return list(self.spans)

    def _positions(self) -> tuple[NDArray[np.int64], NDArray[np.intp], NDArray[np.bool_]]:
        if self._arrays is None:
            self._arrays = (
                np.asarray(self.chunk_ids, dtype=np.int64),
                np.asarray(self.starts, dtype=np.intp),
                np.asarray(self.alive, dtype=np.bool_),
            )
        return self._arrays

    def update(self, added: dict[int, NDArray[np.float32]], hashes: dict[int, str], removed: set[int]) -> None:
        """Drop the chunks in ``removed`` and append ``added`` (id -> rows) with their content hashes."""
        self._arrays = None
        position = {cid: i for i, cid in enumerate(self.chunk_ids) if self.alive[i]} if removed else {}
        for cid in removed:
            if self.spans.pop(cid, None) is not None:
                self.alive[position[cid]] = False
                self.dead += 1
            self.hashes.pop(cid, None)
        need = self.used + sum(block.shape[0] for block in added.values())
        if need > self.matrix.shape[0]:
            grown = np.zeros((max(need, 2 * self.matrix.shape[0], 64), self.dim), dtype=np.float32)
            grown[: self.used] = self.matrix[: self.used]
            self.matrix = grown
        for cid in sorted(added):
            block = added[cid]
            start, end = self.used, self.used + block.shape[0]
            self.matrix[start:end] = block
            self.spans[cid] = (start, end)
            self.hashes[cid] = hashes[cid]
            self.chunk_ids.append(cid)
            self.starts.append(start)
            self.alive.append(True)
            self.used = end
        if self.dead > max(64, len(self.chunk_ids) // 4):
            self._compact()

    def _compact(self) -> None:
        """Rewrite the matrix with live rows only."""
        live = [(cid, self.spans[cid]) for cid, ok in zip(self.chunk_ids, self.alive, strict=True) if ok]
        blocks = {cid: self.matrix[a:b].copy() for cid, (a, b) in live}
        hashes = dict(self.hashes)
        self.matrix = np.zeros((0, self.dim), dtype=np.float32)
        self.spans, self.hashes, self.chunk_ids, self.starts, self.alive = {}, {}, [], [], []
        self.used = self.dead = 0
        self._arrays = None
        self.update(blocks, hashes, set())

    def rows(self, chunk_id: int) -> NDArray[np.float32] | None:
        span = self.spans.get(chunk_id)
        return None if span is None else self.matrix[span[0] : span[1]]

    def scores(self, query: NDArray[np.float32], window_weight: float) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Live chunk ids and their similarity to ``query``."""
        ids, starts, alive = self._positions()
        sims = self.matrix[: self.used] @ query
        whole = sims[starts]
        # Rows of a chunk are contiguous: the best of each run. A chunk without windows has only its
        # whole vector, which is then its best row too.
        best = np.maximum.reduceat(sims, starts)
        score = ((1.0 - window_weight) * whole + window_weight * best).astype(np.float32)
        if self.dead:
            return ids[alive], score[alive]
        return ids, score


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
            removed = {cid for cid, chash in km.hashes.items() if current.get(cid) != chash}
            wanted = [cid for cid, chash in current.items() if km.hashes.get(cid) != chash]
            added: dict[int, NDArray[np.float32]] = {}
            hashes: dict[int, str] = {}
            stmt = text("SELECT id, content_hash, embedding FROM chunks WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            )
            for start in range(0, len(wanted), 500):
                for cid, chash, blob in conn.execute(stmt, {"ids": wanted[start : start + 500]}):
                    if blob is not None:
                        added[int(cid)], hashes[int(cid)] = unpack(bytes(blob), self.dim), str(chash)
            km.update(added, hashes, removed)
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
                if km is None or not km.spans:
                    continue
                ids, score = km.scores(query, window_weight)
                all_ids.append(ids)
                all_scores.append(score)
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
