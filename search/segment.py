"""One immutable piece of the in-memory inverted index: postings of terms and word pairs in CSR arrays.

A chunk's title and text are analyzed (``search.text.stems``, the analyzer the full-text table gets)
into term ids of a :class:`Vocabulary`. Every term, and every pair of terms standing next to each other
in the same field (a *bigram*, so a query's two-word phrases are single lookups), becomes a **key**:

- term ``t`` -> key ``t``;
- bigram ``(a, b)`` -> key ``((a + 1) << 32) | b``, which is never below ``2**32`` and so never a term.

A :class:`Segment` holds, for its documents (chunks, numbered ``0..n-1`` in ascending chunk id):

- ``doc_ids`` (int64) the chunk id of each document, ``doc_len`` (float32) its tokens in title + text;
- ``keys`` (int64, sorted, distinct) and ``indptr`` (int64): the postings of ``keys[i]`` are
  ``docs[indptr[i]:indptr[i+1]]`` (int32, local document numbers) with ``tf[...]`` (float32), the
  weighted frequency ``title_weight * tf_title + tf_body`` (the BM25F of FTS5's column weights).

Eight bytes per posting plus sixteen per distinct key; postings within a key are in no particular
order. Segments are built once (:func:`build`) and combined by :func:`merge`, which drops the
documents a mask marks dead; nothing changes a segment after it is made, so readers need no lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from search.text import stems

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import NDArray

_SHIFT = 32


def bigram_key(a: int, b: int) -> int:
    """The key of term ``a`` followed by term ``b``."""
    return ((a + 1) << _SHIFT) | b


class Vocabulary:
    """Stem -> term id for one process; ids are handed out in order and never reused or dropped.

    Lookups need no lock (a dict read is atomic in CPython); new ids are assigned under one.
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, stem: str) -> int | None:
        """The id of ``stem``, or None when no indexed text ever had it."""
        return self._ids.get(stem)

    def ids(self, words: Sequence[str]) -> list[int]:
        """Ids of ``words``, assigning new ones to stems not seen before."""
        ids = self._ids
        out = [ids.get(w, -1) for w in words]
        if -1 in out:
            with self._lock:
                for i, w in enumerate(words):
                    if out[i] < 0:
                        out[i] = ids.setdefault(w, len(ids))
        return out


@dataclass(frozen=True)
class Segment:
    """Postings of a set of chunks (see the module docstring for the arrays)."""

    doc_ids: NDArray[np.int64]
    doc_len: NDArray[np.float32]
    keys: NDArray[np.int64]
    indptr: NDArray[np.int64]
    docs: NDArray[np.int32]
    tf: NDArray[np.float32]

    @property
    def n_docs(self) -> int:
        return int(self.doc_ids.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        arrays = (self.doc_ids, self.doc_len, self.keys, self.indptr, self.docs, self.tf)
        return sum(a.nbytes for a in arrays)

    def postings(self, key: int) -> tuple[NDArray[np.int32], NDArray[np.float32]] | None:
        """Local documents and weighted frequencies of ``key``, or None when no document has it."""
        i = int(np.searchsorted(self.keys, key))
        if i >= self.keys.shape[0] or int(self.keys[i]) != key:
            return None
        a, b = int(self.indptr[i]), int(self.indptr[i + 1])
        return self.docs[a:b], self.tf[a:b]

    def local(self, chunk_ids: NDArray[np.int64]) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
        """Local document numbers of ``chunk_ids`` and which of them are in this segment."""
        pos = np.searchsorted(self.doc_ids, chunk_ids)
        found = pos < self.n_docs
        found[found] = self.doc_ids[pos[found]] == chunk_ids[found]
        return pos, found


def empty() -> Segment:
    """A segment with no documents."""
    return Segment(
        np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(1, np.int64),
        np.zeros(0, np.int32), np.zeros(0, np.float32),
    )  # fmt: skip


def _csr(
    keys: NDArray[np.int64], docs: NDArray[np.int32], tf: NDArray[np.float32]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int32], NDArray[np.float32]]:
    """Postings with distinct ``(key, doc)`` pairs grouped by key: ``(keys, indptr, docs, tf)``."""
    order = np.argsort(keys, kind="stable")
    keys, docs, tf = keys[order], docs[order], tf[order]
    if keys.shape[0] == 0:
        return keys, np.zeros(1, np.int64), docs, tf
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    indptr = np.concatenate((starts, [keys.shape[0]])).astype(np.int64)
    return keys[starts], indptr, docs, tf


def build(rows: Iterable[tuple[int, str, str]], vocab: Vocabulary, title_weight: float) -> Segment:
    """Index chunk rows ``(chunk id, title, text)``; ids need not be sorted but must be distinct.

    Args:
        rows: the chunks.
        vocab: the process's vocabulary (new stems get ids).
        title_weight: how much a title occurrence counts against one in the text.
    """
    ordered = sorted(rows, key=lambda r: r[0])
    tokens: list[int] = []
    counts: list[int] = []  # tokens per field: title of doc 0, text of doc 0, title of doc 1, ...
    for _, title, body in ordered:
        for field in (title, body):
            ids = vocab.ids(stems(field or ""))
            tokens.extend(ids)
            counts.append(len(ids))
    n = len(ordered)
    doc_ids = np.fromiter((r[0] for r in ordered), np.int64, n)
    per_field = np.asarray(counts, np.int64).reshape(n, 2) if n else np.zeros((0, 2), np.int64)
    doc_len = per_field.sum(axis=1).astype(np.float32)
    tok = np.asarray(tokens, np.int64)
    field_of = np.repeat(np.arange(2 * n, dtype=np.int64), per_field.reshape(-1))  # token -> field
    same = field_of[1:] == field_of[:-1]  # neighbours in one field form a bigram
    pairs = ((tok[:-1][same] + 1) << _SHIFT) | tok[1:][same]
    keys = np.concatenate((tok, pairs))
    fields = np.concatenate((field_of, field_of[1:][same]))
    weights = np.where(fields % 2 == 0, np.float32(title_weight), np.float32(1.0)).astype(np.float32)
    docs = (fields // 2).astype(np.int32)
    # Sum the weights of each distinct (key, doc): sort by doc then key, cut where either changes.
    order = np.lexsort((docs, keys))
    keys, docs, weights = keys[order], docs[order], weights[order]
    if keys.shape[0]:
        cut = np.flatnonzero(np.concatenate(([True], (keys[1:] != keys[:-1]) | (docs[1:] != docs[:-1]))))
        keys, docs, weights = keys[cut], docs[cut], np.add.reduceat(weights, cut).astype(np.float32)
    ukeys, indptr, docs, tf = _csr(keys, docs, weights)
    return Segment(doc_ids, doc_len, ukeys, indptr, docs, tf)


def merge(parts: Sequence[tuple[Segment, NDArray[np.bool_] | None]]) -> Segment:
    """One segment holding the live documents of ``parts``; each part's mask marks its live documents
    (None: all). A chunk id must be live in at most one part."""
    ids, lens, keys, docs, tfs = [], [], [], [], []
    for seg, alive in parts:
        live = np.ones(seg.n_docs, np.bool_) if alive is None else alive
        ids.append(seg.doc_ids[live])
        lens.append(seg.doc_len[live])
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    order = np.argsort(all_ids, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])  # position in the concatenation -> new local number
    offset = 0
    for (seg, alive), part_ids in zip(parts, ids, strict=True):
        live = np.ones(seg.n_docs, np.bool_) if alive is None else alive
        renumber = np.full(seg.n_docs, -1, np.int64)
        renumber[live] = rank[offset : offset + part_ids.shape[0]]
        offset += part_ids.shape[0]
        per_key = np.repeat(seg.keys, np.diff(seg.indptr))
        keep = live[seg.docs]
        keys.append(per_key[keep])
        docs.append(renumber[seg.docs[keep]].astype(np.int32))
        tfs.append(seg.tf[keep])
    if not parts:
        return empty()
    ukeys, indptr, d, tf = _csr(np.concatenate(keys), np.concatenate(docs), np.concatenate(tfs))
    return Segment(all_ids[order], np.concatenate(lens)[order], ukeys, indptr, d, tf)
