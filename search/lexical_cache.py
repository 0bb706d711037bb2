"""Lexical side of the search index held in memory: BM25F over an inverted index per chunk kind.

The database stays authoritative; this is a per-process view of ``chunks`` in the spirit of
``search.dense.DenseCache``. Per kind a :class:`_View` holds:

- a **base** :class:`~search.segment.Segment` and a mask of its live documents;
- a small **delta** segment with the chunks written since the base was made;
- the ids and content hashes (as Python ``hash`` values, 8 bytes each) of every indexed chunk.

When the kind's generation token (``index_state``, moved by every write) differs from the view's,
``(id, content_hash)`` pairs are read; only new or changed chunks are read in full and analyzed,
their old versions and removed chunks are marked dead in the base or left out of the new delta. When
the delta and the dead documents pass an eighth of the base (and 64 chunks), both are merged into a
new base.
A view is never changed once published: a refresh builds the next one and swaps it in. Refreshes
are serialised by one lock; searches only take a second, short lock to copy the published views, so
a search whose generation is already loaded does not wait for a refresh of a newer one.

Ranking is FTS5's ``bm25(chunks_fts, 2.0, 1.0)`` computed the same way, per query key (term or
two-word phrase): ``idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len / avgdl))`` summed, with
``f = 2 * tf_title + tf_body``, ``len`` the chunk's tokens in title and text, ``k1 = 1.2``,
``b = 0.75``, ``idf = log((N - n + 0.5) / (n + 0.5))`` floored at ``1e-6``. ``N``, ``n`` and
``avgdl`` are counted over the kinds named in ``stats_kinds`` (the index passes every kind: FTS5
counts the whole table, whatever kinds the query keeps), so on SQLite the scores are FTS5's up to
float32 rounding; on PostgreSQL this replaces ``ts_rank_cd`` with the same BM25F.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, bindparam, text

from search import segment
from search.segment import Segment, Vocabulary, bigram_key

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import NDArray

K1 = 1.2
B = 0.75
MIN_IDF = 1e-6
_FETCH = 500  # chunk ids per SELECT ... IN


@dataclass(frozen=True)
class _View:
    """One kind's postings at one generation token (see the module docstring)."""

    token: str | None
    base: Segment
    alive: NDArray[np.bool_] | None  # live base documents; None: all of them
    delta: Segment
    ids: NDArray[np.int64]  # indexed chunk ids, sorted
    hashes: NDArray[np.int64]  # hash(content_hash) of each, aligned with ``ids``
    live_len: float  # tokens of the live documents

    @property
    def live_docs(self) -> int:
        return int(self.ids.shape[0])

    @property
    def dead(self) -> int:
        return 0 if self.alive is None else int(self.alive.shape[0] - np.count_nonzero(self.alive))

    def postings(self, key: int) -> list[tuple[int, NDArray[np.int32], NDArray[np.float32]]]:
        """``(0 base | 1 delta, local documents, weighted frequencies)`` of ``key``, live documents only."""
        out = []
        for part, seg in enumerate((self.base, self.delta)):
            found = seg.postings(key)
            if found is None:
                continue
            docs, tf = found
            if part == 0 and self.alive is not None:
                keep = self.alive[docs]
                docs, tf = docs[keep], tf[keep]
            if docs.shape[0]:
                out.append((part, docs, tf))
        return out


def _empty_view() -> _View:
    none = np.zeros(0, np.int64)
    return _View(None, segment.empty(), None, segment.empty(), none, none, 0.0)


def _hashes(values: Sequence[str]) -> NDArray[np.int64]:
    return np.fromiter((hash(v) for v in values), np.int64, len(values))


class LexicalCache:
    """Per-kind inverted indexes of ``chunks``, refreshed incrementally; shared by a process's threads.

    Args:
        title_weight: weight of a title occurrence against one in the text (FTS5's column weight).
        compact_ratio: merge the delta into the base once delta plus dead documents pass this share of
            the base.
    """

    def __init__(self, title_weight: float = 2.0, compact_ratio: float = 0.125) -> None:
        self.title_weight = title_weight
        self.compact_ratio = compact_ratio
        self.vocab = Vocabulary()
        self._views: dict[str, _View] = {}
        self._lock = threading.Lock()  # guards ``_views`` (held only to read or swap an entry)
        self._refreshing = threading.Lock()  # one refresh at a time
        self.loaded_chunks = 0  # chunks analyzed by this instance so far

    def invalidate(self) -> None:
        """Forget everything (the next search reloads)."""
        with self._lock:
            self._views.clear()

    # --- refresh ----------------------------------------------------------------------------------

    def refresh(self, conn: Connection, kind: str, token: str | None) -> None:
        """Bring the view of ``kind`` up to the generation ``token`` read from the database."""
        with self._lock:
            view = self._views.get(kind)
        if view is not None and view.token == token:
            return
        with self._refreshing:
            with self._lock:
                view = self._views.get(kind)
            if view is not None and view.token == token:  # another thread got there first
                return
            if view is None:
                rows = conn.execute(
                    text("SELECT id, content_hash, title, text FROM chunks WHERE kind = :k"), {"k": kind}
                ).all()
                new = self._load(token, rows)
            else:
                new = self._update(conn, view, kind, token)
            with self._lock:
                self._views[kind] = new

    def _build(self, rows: Sequence[tuple[int, str, str, str]]) -> Segment:
        self.loaded_chunks += len(rows)
        return segment.build(((int(r[0]), r[2], r[3]) for r in rows), self.vocab, self.title_weight)

    def _load(self, token: str | None, rows: Sequence[tuple[int, str, str, str]]) -> _View:
        base = self._build(rows)
        by_id = {int(r[0]): str(r[1]) for r in rows}
        hashes = _hashes([by_id[int(i)] for i in base.doc_ids])
        return _View(token, base, None, segment.empty(), base.doc_ids, hashes, float(base.doc_len.sum()))

    def _update(self, conn: Connection, view: _View, kind: str, token: str | None) -> _View:
        pairs = conn.execute(text("SELECT id, content_hash FROM chunks WHERE kind = :k"), {"k": kind}).all()
        cur_ids = np.fromiter((int(r[0]) for r in pairs), np.int64, len(pairs))
        cur_hash = _hashes([str(r[1]) for r in pairs])
        pos = np.searchsorted(view.ids, cur_ids)
        known = pos < view.live_docs
        known[known] = view.ids[pos[known]] == cur_ids[known]
        same = known.copy()
        same[known] = view.hashes[pos[known]] == cur_hash[known]
        kept = np.sort(cur_ids[same])
        wanted = [int(i) for i in cur_ids[~same]]
        stmt = text("SELECT id, content_hash, title, text FROM chunks WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        rows: list[Any] = []
        for start in range(0, len(wanted), _FETCH):
            rows += conn.execute(stmt, {"ids": wanted[start : start + _FETCH]}).all()
        fresh = self._build(rows)
        fresh_hash = {int(r[0]): str(r[1]) for r in rows}
        # Live base / delta documents: those whose chunk is still indexed with the same content.
        alive = np.isin(view.base.doc_ids, kept)
        if view.alive is not None:
            alive &= view.alive
        delta_alive = np.isin(view.delta.doc_ids, kept)
        delta = segment.merge([(view.delta, delta_alive), (fresh, None)])
        dead = int(alive.shape[0] - np.count_nonzero(alive))
        base: Segment = view.base
        base_alive: NDArray[np.bool_] | None = alive if dead else None
        if delta.n_docs + dead > max(64, self.compact_ratio * base.n_docs):
            base = segment.merge([(base, base_alive), (delta, None)])
            base_alive, delta = None, segment.empty()
        ids = np.concatenate((kept, fresh.doc_ids))
        hashes = np.concatenate((view.hashes[np.searchsorted(view.ids, kept)], _hashes(
            [fresh_hash[int(i)] for i in fresh.doc_ids]
        )))  # fmt: skip
        order = np.argsort(ids, kind="stable")
        live_len = float(delta.doc_len.sum()) + float(
            base.doc_len.sum() if base_alive is None else base.doc_len[base_alive].sum()
        )
        return _View(token, base, base_alive, delta, ids[order], hashes[order], live_len)

    # --- queries ----------------------------------------------------------------------------------

    def _snapshot(self, *groups: Sequence[str]) -> list[list[_View]]:
        """The published views of each group of kinds, all read at one moment."""
        with self._lock:
            views = dict(self._views)
        return [[v for k in dict.fromkeys(g) if (v := views.get(k)) is not None and v.live_docs] for g in groups]

    def _keys(self, terms: Sequence[str], phrases: Sequence[tuple[str, str]]) -> list[int]:
        keys: dict[int, None] = {}
        for stem in terms:
            t = self.vocab.get(stem)
            if t is not None:
                keys[t] = None
        for a, b in phrases:
            ta, tb = self.vocab.get(a), self.vocab.get(b)
            if ta is not None and tb is not None:
                keys[bigram_key(ta, tb)] = None
        return list(keys)

    def search(
        self,
        kinds: Sequence[str],
        terms: Sequence[str],
        phrases: Sequence[tuple[str, str]],
        limit: int,
        stats_kinds: Sequence[str] | None = None,
    ) -> list[tuple[int, float]]:
        """Chunk ids of ``kinds`` matching any term or phrase (stems), with BM25F scores, best first.

        Call :meth:`refresh` for each kind first; a kind never refreshed is neither searched nor counted.

        Args:
            kinds: the kinds whose chunks may be returned.
            terms: analyzed stems.
            phrases: pairs of stems that must stand next to each other in one field.
            limit: how many ids at most.
            stats_kinds: the kinds ``N``, ``n`` and ``avgdl`` are counted over (default: ``kinds``).
        """
        views, counted = self._snapshot(kinds, kinds if stats_kinds is None else stats_kinds)
        keys = self._keys(terms, phrases)
        if not views or not counted or not keys or limit <= 0:
            return []
        total = sum(v.live_docs for v in counted)
        avgdl = max(sum(v.live_len for v in counted) / total, 1e-9)
        looked_up = {id(v): [v.postings(key) for key in keys] for v in (*counted, *views)}
        found = [looked_up[id(v)] for v in views]
        idf = []
        for j in range(len(keys)):
            n = sum(docs.shape[0] for v in counted for _, docs, _ in looked_up[id(v)][j])
            idf.append(max(math.log((total - n + 0.5) / (n + 0.5)), MIN_IDF) if n else 0.0)
        ids: list[NDArray[np.int64]] = []
        scores: list[NDArray[np.float32]] = []
        for view, per_key in zip(views, found, strict=True):
            for part, seg in enumerate((view.base, view.delta)):
                lists = [(idf[j], docs, tf) for j, plist in enumerate(per_key) for p, docs, tf in plist if p == part]
                if not lists:
                    continue
                norm = (K1 * (1.0 - B + B * seg.doc_len / avgdl)).astype(np.float32)
                acc = np.zeros(seg.n_docs, np.float32)
                for w, docs, tf in lists:
                    acc[docs] += np.float32(w * (K1 + 1.0)) * tf / (tf + norm[docs])
                hit = np.flatnonzero(acc > 0)
                if hit.shape[0] > limit:
                    hit = hit[np.argpartition(-acc[hit], limit - 1)[:limit]]
                ids.append(seg.doc_ids[hit])
                scores.append(acc[hit])
        if not ids:
            return []
        all_ids, all_scores = np.concatenate(ids), np.concatenate(scores)
        order = np.lexsort((all_ids, -all_scores))[:limit]
        return [(int(all_ids[i]), float(all_scores[i])) for i in order]

    def doc_freqs(self, kinds: Sequence[str], terms: Sequence[str]) -> tuple[int, dict[str, int]]:
        """Live chunks of ``kinds`` and, per stem that occurs in them, how many contain it."""
        (views,) = self._snapshot(kinds)
        out: dict[str, int] = {}
        for stem in dict.fromkeys(terms):
            t = self.vocab.get(stem)
            if t is None:
                continue
            n = sum(docs.shape[0] for v in views for _, docs, _ in v.postings(t))
            if n:
                out[stem] = n
        return sum(v.live_docs for v in views), out

    def stats(self) -> dict[str, int]:
        """Documents, postings, distinct keys and bytes held, over all kinds (for benchmarks)."""
        with self._lock:
            views = list(self._views.values())
        segs = [s for v in views for s in (v.base, v.delta)]
        return {
            "chunks": sum(v.live_docs for v in views),
            "dead": sum(v.dead for v in views),
            "delta_chunks": sum(v.delta.n_docs for v in views),
            "postings": sum(int(s.docs.shape[0]) for s in segs),
            "keys": sum(int(s.keys.shape[0]) for s in segs),
            "terms": len(self.vocab),
            "bytes": sum(s.nbytes for s in segs) + sum(v.ids.nbytes + v.hashes.nbytes for v in views),
        }
