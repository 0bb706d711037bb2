"""The search index: hybrid lexical + dense retrieval over the ``chunks`` table.

Chunks are raw source pieces (``kind="source"``), page sections (``"section"``) and claims
(``"claim"``), each identified by ``(kind, ref, ordinal)``. ``SearchIndex.search`` ranks them with no
model call other than one sentence embedding of the query:

1. lexical: BM25 over analyzed terms, the title weighted above the text, plus the query's adjacent word
   pairs as phrases, from a per-process inverted index (``search.lexical_cache``;
   ``SearchConfig(lexical="sql")`` asks SQLite FTS5 or PostgreSQL text search instead,
   ``search.lexical``); dense: cosine similarity to whole-chunk and window vectors (``search.dense``);
   each list keeps its best ``pool`` chunks;
2. fusion: ``bm25_weight * lexical + (1 - bm25_weight) * dense`` on min-max normalised scores
   (``search_fusion.fuse``); ``SearchConfig(fusion="rrf")`` uses reciprocal rank fusion instead;
3. feedback (mode ``"hybrid"``): the best ``feedback_docs`` chunks of that first pass expand the query
   once. Their most distinctive terms (relative frequency x idf) join the lexical query (RM3-like) and
   the mean of their vectors is added to the query vector (Rocchio); the second pass, fused the same
   way, is the answer. It reaches passages one step away from the question (the second hop of a
   multi-hop question, other pieces of the same document) that share words with the first hits.

Writes keep the database authoritative (the full-text table or index is maintained with every write,
whichever lexical side searches): each one moves the generation token of its kind (``search_state``)
in the same transaction, and a search reloads only the vectors and postings of chunks that changed.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlalchemy import Connection, Engine, delete, insert, select, update

from search.dense import DenseCache, pack
from search.embedding import Embedder, normalise
from search.errors import IndexMismatch, SearchError
from search.fusion import fuse, rrf, top
from search.lexical import TITLE_WEIGHT, LexicalBackend
from search.lexical_cache import LexicalCache
from search.text import ANALYZER_VERSION, QueryTerms, Term, analyze, chunk_text, query_terms
from store import search_state
from store.models import Chunk

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import NDArray

KINDS = ("source", "section", "claim")
Mode = Literal["hybrid", "bm25", "dense"]
_C = Chunk.__table__.c
_Key = tuple[str, str, int]
_RECENT_QUERIES = 256  # query embeddings kept for repeated queries


@dataclass(frozen=True)
class ChunkInput:
    """One chunk to index; ``citations`` is stored as given and returned with every hit."""

    kind: str
    ref: str
    ordinal: int
    text: str
    title: str = ""
    citations: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Hash of title and text: an unchanged hash means no re-embedding."""
        return hashlib.sha256(f"{self.title}\x00{self.text}".encode()).hexdigest()


@dataclass(frozen=True)
class Hit:
    """A ranked chunk."""

    kind: str
    ref: str
    ordinal: int
    title: str
    text: str
    score: float
    citations: dict[str, Any]


@dataclass(frozen=True)
class SearchConfig:
    """Ranking parameters. The defaults are the product's; docs/benchmarks.md shows their effect."""

    pool: int = 100  # candidates kept from each list
    fusion: Literal["convex", "rrf"] = "convex"  # score fusion, or reciprocal rank fusion (the baseline)
    bm25_weight: float = 0.4  # share of the lexical score in the convex fusion
    rrf_k: int = 60  # damping constant of reciprocal rank fusion
    phrases: bool = True  # adjacent query words also match as a phrase
    feedback_docs: int = 3  # first-pass chunks that expand the query (0: no feedback pass)
    feedback_terms: int = 10  # terms added to the lexical query
    rocchio_beta: float = 0.5  # weight of the feedback centroid added to the query vector
    window_tokens: int = 48  # a text longer than this also gets one vector per window of this size
    window_weight: float = 0.5  # share of the best window in a chunk's dense score
    lexical: Literal["memory", "sql"] = "memory"  # in-process inverted index, or the database's full text


#: The shared sets the defaults above were chosen on (``lore eval tune-retrieval``; docs/benchmarks.md
#: shows the cross-set figures: each set scored with settings tuned on the other).
TUNED_ON = ("musique-100", "ramdocs-dev")


@dataclass
class _Row:
    id: int
    content_hash: str  # "" when the row has no vector yet
    citations: dict[str, Any]
    title: str
    text: str


def ensure_index(engine: Engine) -> None:
    """Create the full-text structures for ``chunks`` if missing, or rebuild them after an analyzer
    change. Idempotent; needs no embedder."""
    backend = LexicalBackend(engine.dialect.name)
    with engine.begin() as conn:
        created = backend.ensure(conn)
        state = search_state.read(conn, "search:fts")
        outdated = state is not None and state[0] != ANALYZER_VERSION
        if backend.is_sqlite and (created or outdated):
            backend.rebuild(conn)
        if state is None or outdated:
            search_state.write(conn, "search:fts", commit_id=ANALYZER_VERSION)


class SearchIndex:
    """Hybrid search over ``chunks``; one instance may be shared by the threads of a process.

    Args:
        engine: the ledger database (SQLite or PostgreSQL) whose tables exist.
        embedder: the sentence embedder; its ``name`` is recorded and must stay the same for an index.
        config: ranking parameters.
    """

    def __init__(self, engine: Engine, embedder: Embedder, config: SearchConfig | None = None) -> None:
        self.engine = engine
        self.embedder = embedder
        self.config = config or SearchConfig()
        self._lexical = LexicalBackend(engine.dialect.name)
        self._dense: DenseCache | None = None
        self._postings = LexicalCache(TITLE_WEIGHT)
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self.embedded = 0  # chunks embedded by this instance so far

    # --- setup ------------------------------------------------------------------------------------

    def ensure_index(self) -> None:
        """Create the full-text structures and record the embedder (idempotent).

        Raises:
            IndexMismatch: the stored vectors were made by another embedder.
        """
        with self._lock:
            if self._dense is not None:
                return
            ensure_index(self.engine)
            with self.engine.begin() as conn:
                state = search_state.read(conn, "search:embedder")
                recorded = state[1] if state else None
                if recorded not in (None, self.embedder.name):
                    raise IndexMismatch(
                        f"the index was built with embedder {recorded!r}, not {self.embedder.name!r}; "
                        "delete its chunks and index again"
                    )
                if recorded is None:
                    search_state.write(conn, "search:embedder", embedder=self.embedder.name)
            self._dense = DenseCache(self.embedder.dim)

    def _cache(self) -> DenseCache:
        self.ensure_index()
        assert self._dense is not None
        return self._dense

    # --- writes -----------------------------------------------------------------------------------

    def _vectors(self, chunks: Sequence[ChunkInput]) -> list[NDArray[np.float32]]:
        """Whole-chunk vector, then window vectors, for each chunk; one embedding batch for all."""
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        for c in chunks:
            prefix = f"{c.title}\n" if c.title else ""
            start = len(texts)
            texts.append(prefix + c.text)
            windows = chunk_text(c.text, self.config.window_tokens)
            if len(windows) > 1:
                texts.extend(prefix + w for w in windows)
            spans.append((start, len(texts)))
        if not texts:
            return []
        vecs = normalise(self.embedder.embed(texts))
        self.embedded += len(chunks)
        return [vecs[a:b] for a, b in spans]

    def upsert(self, chunks: Sequence[ChunkInput], *, replace: bool = False) -> int:
        """Add or update chunks; only new or changed title/text is embedded.

        Args:
            chunks: the chunks; a repeated ``(kind, ref, ordinal)`` keeps the last one.
            replace: also delete the other ordinals of each ``(kind, ref)`` given (a re-chunked source).

        Returns:
            How many chunks were inserted or had their title or text changed.

        Raises:
            SearchError: an unknown kind.
        """
        latest: dict[_Key, ChunkInput] = {}
        for c in chunks:
            if c.kind not in KINDS:
                raise SearchError(f"unknown chunk kind {c.kind!r}; expected one of {KINDS}")
            latest[(c.kind, c.ref, int(c.ordinal))] = c
        if not latest:
            return 0
        self.ensure_index()
        with self.engine.connect() as conn:  # embed outside the write transaction
            known = _existing(conn, latest)
            conn.rollback()
        stale = [key for key, c in latest.items() if key not in known or known[key].content_hash != c.content_hash]
        vectors = dict(zip(stale, self._vectors([latest[k] for k in stale]), strict=True))
        written = removed = 0
        with self.engine.begin() as conn:
            current = _existing(conn, latest)
            for key, c in latest.items():
                row = current.get(key)
                if row is not None and row.content_hash == c.content_hash:
                    if row.citations != c.citations:
                        conn.execute(update(Chunk).where(_C.id == row.id).values(citations=c.citations))
                    continue
                vec = vectors.get(key)
                if vec is None:  # changed by another writer since we looked
                    vec = self._vectors([c])[0]
                values = {
                    "title": c.title,
                    "text": c.text,
                    "citations": c.citations,
                    "content_hash": c.content_hash,
                    "embedding": pack(vec),
                }
                if row is not None:
                    self._lexical.remove(conn, [(row.id, row.title, row.text)])
                    conn.execute(update(Chunk).where(_C.id == row.id).values(**values))
                    cid = row.id
                else:
                    stmt = insert(Chunk).values(kind=c.kind, ref=c.ref, ordinal=c.ordinal, **values)
                    cid = int(conn.execute(stmt.returning(_C.id)).scalar_one())
                self._lexical.add(conn, [(cid, c.title, c.text)])
                written += 1
            if replace:
                for kind, ref in sorted({(k, r) for k, r, _ in latest}):
                    keep = {o for k, r, o in latest if (k, r) == (kind, ref)}
                    removed += self._delete(conn, kind, ref, keep)
            if written or removed:
                search_state.touch(conn, {k for k, _, _ in latest})
        return written

    def delete(self, kind: str, ref: str) -> int:
        """Remove every chunk of ``(kind, ref)``; returns how many were removed."""
        self.ensure_index()
        with self.engine.begin() as conn:
            n = self._delete(conn, kind, ref, set())
            if n:
                search_state.touch(conn, [kind])
        return n

    def _delete(self, conn: Connection, kind: str, ref: str, keep: set[int]) -> int:
        rows = conn.execute(select(_C.id, _C.ordinal, _C.title, _C.text).where(_C.kind == kind, _C.ref == ref)).all()
        gone = [(int(r[0]), r[2], r[3]) for r in rows if int(r[1]) not in keep]
        if gone:
            self._lexical.remove(conn, gone)
            conn.execute(delete(Chunk).where(_C.id.in_([g[0] for g in gone])))
        return len(gone)

    # --- reads ------------------------------------------------------------------------------------

    def search(
        self, query: str, k: int = 10, kinds: Sequence[str] = ("section", "claim"), mode: Mode = "hybrid"
    ) -> list[Hit]:
        """The ``k`` best chunks of the given kinds for ``query``.

        Args:
            query: free text.
            k: how many hits to return.
            kinds: chunk kinds to search (tier 2: ``("section", "claim")``; tier 3: ``("source",)``).
            mode: ``"hybrid"`` (default), ``"bm25"`` (lexical only) or ``"dense"`` (vectors only).

        Returns:
            Hits, best first; ``score`` is the fused score in hybrid mode, else that list's own score.

        Raises:
            SearchError: an unknown mode or kind.
        """
        return self._hits(self.rank(query, k, kinds, mode))

    def rank(self, query: str, k: int, kinds: Sequence[str], mode: Mode = "hybrid") -> list[tuple[int, float]]:
        """Like :meth:`search`, returning ``(chunk id, score)`` pairs only."""
        if mode not in ("hybrid", "bm25", "dense"):
            raise SearchError(f"unknown search mode {mode!r}")
        for kind in kinds:
            if kind not in KINDS:
                raise SearchError(f"unknown chunk kind {kind!r}; expected one of {KINDS}")
        if not query.strip() or k <= 0 or not kinds:
            return []
        cfg, cache = self.config, self._cache()
        n = max(cfg.pool, k)
        qt = query_terms(query)
        phrases = list(qt.phrases) if cfg.phrases else []
        with self.engine.connect() as conn:
            self._refresh(conn, kinds, dense=mode != "bm25", lexical=mode != "dense")
            lex: dict[int, float] = {}
            dense: dict[int, float] = {}
            if mode != "dense":
                lex = dict(self._lexical_top(conn, qt.terms, phrases, kinds, n))
            if mode != "bm25":
                qvec = self.query_vector(query)
                dense = self._dense_top(cache, kinds, qvec, n)
            scores = lex if mode == "bm25" else dense if mode == "dense" else self._fuse(lex, dense)
            if mode == "hybrid" and cfg.feedback_docs > 0 and scores:
                lex, dense = self._feedback(conn, cache, kinds, qt, phrases, qvec, scores, n)
                scores = self._fuse(lex, dense)
            conn.rollback()
        return [(i, scores[i]) for i in top(scores, k)]

    def _refresh(self, conn: Connection, kinds: Sequence[str], *, dense: bool, lexical: bool) -> None:
        """Bring the in-memory sides a search needs up to the generation tokens: the vectors of ``kinds``;
        the postings of every kind, since BM25's statistics count the whole collection as FTS5 does."""
        lexical = lexical and self.config.lexical == "memory"
        if not (dense or lexical):
            return
        cache = self._cache()
        # Tokens are read before the chunks they guard: a view is never labelled newer than its data.
        for kind, token in search_state.generations(conn, KINDS if lexical else kinds).items():
            if dense and kind in kinds:
                cache.refresh(conn, kind, token)
            if lexical:
                self._postings.refresh(conn, kind, token)

    def warm(self, kinds: Sequence[str] = KINDS) -> None:
        """Load the in-memory vectors and postings of ``kinds`` now rather than at the first search."""
        with self.engine.connect() as conn:
            self._refresh(conn, kinds, dense=True, lexical=True)
            conn.rollback()

    def _lexical_top(
        self,
        conn: Connection,
        terms: Sequence[Term],
        phrases: Sequence[tuple[Term, Term]],
        kinds: Sequence[str],
        n: int,
    ) -> list[tuple[int, float]]:
        if self.config.lexical == "sql":
            return self._lexical.search(conn, terms, phrases, kinds, n)
        stems = [t.stem for t in terms]
        return self._postings.search(kinds, stems, [(a.stem, b.stem) for a, b in phrases], n, stats_kinds=KINDS)

    def _fuse(self, lex: dict[int, float], dense: dict[int, float]) -> dict[int, float]:
        if self.config.fusion == "rrf":
            return rrf([top(lex, len(lex)), top(dense, len(dense))], k=self.config.rrf_k)
        return fuse(lex, dense, self.config.bm25_weight)

    def query_vector(self, query: str) -> NDArray[np.float32]:
        """The query's unit-length embedding; the last few hundred queries are answered from memory."""
        with self._lock:
            vec = self._recent.get(query)
            if vec is not None:
                self._recent.move_to_end(query)
                return vec
        vec = normalise(self.embedder.embed([query]))[0]
        with self._lock:
            self._recent[query] = vec
            while len(self._recent) > _RECENT_QUERIES:
                self._recent.popitem(last=False)
        return vec

    def _dense_top(
        self, cache: DenseCache, kinds: Sequence[str], qvec: NDArray[np.float32], n: int
    ) -> dict[int, float]:
        ids, scores = cache.scores(kinds, qvec, self.config.window_weight)
        if not len(ids):
            return {}
        n = min(n, len(ids))
        best = np.argpartition(-scores, n - 1)[:n]
        return {int(ids[i]): float(scores[i]) for i in best}

    def _feedback(
        self,
        conn: Connection,
        cache: DenseCache,
        kinds: Sequence[str],
        qt: QueryTerms,
        phrases: list[tuple[Term, Term]],
        qvec: NDArray[np.float32],
        first: dict[int, float],
        n: int,
    ) -> tuple[dict[int, float], dict[int, float]]:
        """Second-pass lexical and dense lists from the query expanded by the best first-pass chunks.

        Each seed counts in proportion to its first-pass score (the best counts 1), as relevance
        models weight feedback documents, so a weak third seed cannot pull the query off topic.
        """
        seeds = top(first, self.config.feedback_docs)
        best = first[seeds[0]]
        weights = {i: (first[i] / best if best > 0 else 1.0) for i in seeds}
        extra = self._feedback_terms(conn, weights, qt.stems)
        lex = dict(self._lexical_top(conn, [*qt.terms, *extra], phrases, kinds, n))
        vectors = cache.whole_vectors(seeds)
        if not vectors:
            return lex, self._dense_top(cache, kinds, qvec, n)
        total = sum(weights[i] for i in vectors)
        centroid = sum(weights[i] * v for i, v in vectors.items()) / total
        q2 = normalise(qvec + self.config.rocchio_beta * centroid)[0]
        return lex, self._dense_top(cache, kinds, q2, n)

    def _feedback_terms(self, conn: Connection, seeds: dict[int, float], exclude: set[str]) -> list[Term]:
        """The most distinctive terms of the seed chunks: weighted relative frequency x idf."""
        weight: dict[str, float] = {}
        surface: dict[str, Counter[str]] = {}
        for cid, title, body in conn.execute(select(_C.id, _C.title, _C.text).where(_C.id.in_(list(seeds)))):
            terms = analyze(f"{title}\n{body}")
            for t in terms:
                weight[t.stem] = weight.get(t.stem, 0.0) + seeds[int(cid)] / len(terms)
                surface.setdefault(t.stem, Counter())[t.surface] += 1
        candidates = [Term(s, surface[s].most_common(1)[0][0]) for s in weight if s not in exclude and not s.isdigit()]
        if not candidates:
            return []
        if self.config.lexical == "sql":
            total, dfs = self._lexical.doc_freqs(conn, candidates)
        else:
            total, dfs = self._postings.doc_freqs(KINDS, [t.stem for t in candidates])
        scored = []
        for term in candidates:
            df = dfs.get(term.stem, 0)
            idf = math.log((total - df + 0.5) / (df + 0.5)) if df else 0.0
            if idf > 0:
                scored.append((weight[term.stem] * idf, term.stem, term))
        scored.sort(key=lambda x: (-x[0], x[1]))
        return [t for _, _, t in scored[: self.config.feedback_terms]]

    def _hits(self, ranked: Sequence[tuple[int, float]]) -> list[Hit]:
        if not ranked:
            return []
        cols = (_C.id, _C.kind, _C.ref, _C.ordinal, _C.title, _C.text, _C.citations)
        with self.engine.connect() as conn:
            rows = {int(r[0]): r for r in conn.execute(select(*cols).where(_C.id.in_([i for i, _ in ranked])))}
            conn.rollback()
        return [
            Hit(r[1], r[2], int(r[3]), r[4], r[5], score, dict(r[6] or {}))
            for cid, score in ranked
            if (r := rows.get(cid)) is not None  # a chunk deleted meanwhile is skipped
        ]


def _existing(conn: Connection, keys: Iterable[_Key]) -> dict[_Key, _Row]:
    """Stored rows for the given keys."""
    by_kind: dict[str, set[str]] = {}
    for kind, ref, _ in keys:
        by_kind.setdefault(kind, set()).add(ref)
    cols = (_C.id, _C.ref, _C.ordinal, _C.content_hash, _C.citations, _C.title, _C.text, _C.embedding.is_(None))
    out: dict[_Key, _Row] = {}
    for kind, refs in by_kind.items():
        ordered = sorted(refs)
        for start in range(0, len(ordered), 500):
            part = ordered[start : start + 500]
            for r in conn.execute(select(*cols).where(_C.kind == kind, _C.ref.in_(part))):
                chash = "" if r[7] else str(r[3])
                out[(kind, r[1], int(r[2]))] = _Row(int(r[0]), chash, dict(r[4] or {}), r[5], r[6])
    return out
