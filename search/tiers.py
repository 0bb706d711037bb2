"""Answering a question from the wiki and its sources, with no model call (DESIGN section 5).

Three kinds of evidence answer a question, each also askable alone (``tier=``):

1. **entity**: an entity named in the question (its name or an alias; case-insensitive, on word
   boundaries, the longest name wins) -> the section(s) of its page that share the most words with
   the question (the page's lead section when none does);
2. **pages**: hybrid search (BM25 + embeddings, fused) over page sections and claims;
3. **sources**: the same search over raw source chunks.

By default they are **fused**: the wiki's evidence (page sections and claims) and the raw chunks are
each ranked by the hybrid search (scores normalised per list, best 1.0), then merged by score, so the
wiki's evidence comes first when it matches better. A named entity does not decide the answer; its
page's sections and claims that match rank a little higher (``ENTITY_BOOST``). The raw chunks are ranked
exactly as tier 3 alone ranks them, and ``SOURCE_SHARE`` of the places (3 of 5) are kept for the best of
them, so a chunk that answers is never hidden behind thin pages. Evidence already shown is not repeated:
a section or claim all of whose quotes are cited by a chosen hit or lie in a chosen chunk is skipped
(several entities often cite the same sentence). ``mode="wiki"`` fuses tiers 1 and 2 only.

The fused answer (and tiers 2 and 3 alone) answers only when the chunk closest to the question by
embedding reaches ``min_similarity`` (cosine); otherwise the entity tier is asked alone. Each hit says
which tier it came from; the answer's ``tier`` is that of its first hit. Every hit carries citations
from the ledger (claim ids, source ids and titles, quotes), looked up at answer time so a retracted
claim shows as retracted.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from search.page_index import CLAIM, PAGE_KINDS, SECTION, SOURCE, Section, page_body, page_sections
from search.text import analyze
from store.git_store import GitStore
from store.models import Chunk, Entity, Source
from store.queries import Citation, citations, entity_names, name_fingerprint, source_page_path

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_NAME_WORDS = 12
#: Words that never make a question "about" something on their own.
STOPWORDS = frozenset(
    """a an and are as at be by can did do does for from had has have how i in is it its of on or our that the
    their there these this to was we were what when where which who why will with you your about after before
    into over under between than then them they he she his her not no yes if all any each more most other some
    such only own same so too very just also should would could may might must shall tell me explain describe""".split()
)


def words(text: str) -> list[str]:
    """Lower-case word tokens of ``text``."""
    return _WORD.findall(text.casefold())


def stems(text: str) -> set[str]:
    """The search analyzer's terms of ``text`` (stopwords dropped, stemmed): "owns" matches "owned"."""
    return {t.stem for t in analyze(text)}


def norm(text: str) -> str:
    """Names compared case- and punctuation-insensitively: words joined by single spaces."""
    return " ".join(words(text))


@dataclass(frozen=True)
class Hit:
    """One piece of an answer."""

    kind: str  # section | claim | source
    ref: str  # page path | claim id | source id
    title: str
    text: str
    score: float
    page: str | None
    citations: tuple[Citation, ...]
    tier: int = 0  # where it came from: 1 the named entity's page, 2 page sections and claims, 3 raw sources


@dataclass(frozen=True)
class Answer:
    """The answer to a question and the tier that gave it (0 when none could)."""

    query: str
    tier: int
    answered_by: str  # entity | pages | sources | none
    entity: str | None
    hits: tuple[Hit, ...]


TIER_NAMES = {0: "none", 1: "entity", 2: "pages", 3: "sources"}
LIVE_CLAIMS = ("active", "disputed")
#: How much higher a matching section or claim of the entity the question names ranks (score factor).
ENTITY_BOOST = 1.1
#: Candidates the fused search ranks, per hit wanted (at least ``MIN_POOL``).
POOL_PER_HIT, MIN_POOL = 4, 20
#: Share of a fused answer's hits kept for raw source chunks when the pool has them (rounded down):
#: chosen with ``lore eval qa`` on the embedded model's wiki and on the fake model's (docs/benchmarks.md).
SOURCE_SHARE = 0.6


class QueryVectorCache:
    """An embedder wrapper that memoizes single-text embeddings (questions) in a small LRU.

    A tier-2 or tier-3 answer embeds the question twice (the relevance gate, then the hybrid search);
    on a small CPU that embedding is most of the query's cost. Batches (indexing) pass straight through.
    """

    def __init__(self, inner: Any, size: int = 1024) -> None:
        self.inner = inner
        self.size = size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Any] = OrderedDict()

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    def embed(self, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        """Embed ``texts``; a single text is answered from the cache when it was seen recently."""
        if len(texts) != 1:
            return self.inner.embed(texts, *args, **kwargs)
        key = texts[0]
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found.copy()
        vectors = self.inner.embed(texts, *args, **kwargs)
        with self._lock:
            self._cache[key] = vectors.copy()
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return vectors


class _NameIndex:
    """Entity names and aliases by normalized form, rebuilt when entities or aliases change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fingerprint: tuple[int, ...] | None = None
        self._names: dict[str, set[int]] = {}
        self._longest = 1

    def refresh(self, session: Session) -> None:
        fingerprint = name_fingerprint(session)
        if fingerprint == self._fingerprint:
            return
        with self._lock:
            names: dict[str, set[int]] = {}
            for name, entity_id in entity_names(session):
                key = norm(name)
                if not key or len(key) < 2 or all(w in STOPWORDS for w in key.split()):
                    continue
                names.setdefault(key, set()).add(entity_id)
            self._names = names
            self._longest = min(MAX_NAME_WORDS, max((k.count(" ") + 1 for k in names), default=1))
            self._fingerprint = fingerprint

    def find(self, question: str) -> tuple[str, set[int]] | None:
        """The longest entity name found in ``question`` (earliest on ties), with its entity ids."""
        tokens = words(question)
        for n in range(min(self._longest, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                key = " ".join(tokens[i : i + n])
                found = self._names.get(key)
                if found:
                    return key, found
        return None


class QueryEngine:
    """Answers questions from entity pages, then the page index, then raw source chunks.

    Args:
        session_factory: ledger sessions.
        store: the git page store (pages are read at HEAD).
        search: the search index (``search.index.SearchIndex``), or None: only tier 1 can answer. Its
            embedder is wrapped in a :class:`QueryVectorCache` (same vectors, fewer model runs).
        min_similarity: cosine similarity at which a hit the lexical side did not match still counts.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        store: GitStore,
        search: Any | None,
        *,
        min_similarity: float = 0.35,
    ) -> None:
        self.session_factory = session_factory
        self.store = store
        self.search = search
        self.min_similarity = min_similarity
        embedder = getattr(search, "embedder", None)
        if search is not None and embedder is not None and not isinstance(embedder, QueryVectorCache):
            # The index is this process's; memoizing question vectors changes no result.
            search.embedder = QueryVectorCache(embedder)
        self._names = _NameIndex()

    def answer(self, question: str, k: int = 5, *, tier: int | None = None, mode: str = "default") -> Answer:
        """Answer ``question`` with at most ``k`` hits.

        Args:
            question: free text.
            k: hits wanted (1..50).
            tier: ask only this tier (1, 2 or 3); None walks the tiers in order.
        """
        k = max(1, min(int(k), 50))
        if tier in (1, 2, 3):
            tiers: tuple[int, ...] = (tier,)
        else:
            return self._fused(question, k, with_sources=mode != "wiki")
        # Sessions stay short and are never open across a search call: on SQLite every transaction
        # takes the database's write lock (BEGIN IMMEDIATE), so a held one would block the index.
        for t in tiers:
            if t == 1:
                entity, hits = self._tier_entity(question, k)
            else:
                entity, hits = None, self._tier_search(question, k, PAGE_KINDS if t == 2 else (SOURCE,))
            if hits:
                return Answer(question, t, TIER_NAMES[t], entity, tuple(hits))
        return Answer(question, 0, "none", None, ())

    # --- fused -----------------------------------------------------------------------------------

    def _fused(self, question: str, k: int, *, with_sources: bool) -> Answer:
        """Sections, claims and (``with_sources``) raw chunks ranked together; see the module docstring."""
        named = self._names_in(question)
        n = max(MIN_POOL, POOL_PER_HIT * k)
        # Two searches, each with its own gate and feedback pass, so the raw chunks are ranked exactly as
        # tier 3 alone ranks them: one search over both would let short page sections steer the chunks'
        # feedback terms and push the chunk that answers down.
        pool = self._tier_search(question, n, PAGE_KINDS)
        if with_sources:
            pool += self._tier_search(question, n, (SOURCE,))
        if not pool:
            entity, hits = self._tier_entity(question, k)
            return Answer(question, 1, "entity", entity, tuple(hits)) if hits else Answer(question, 0, "none", None, ())
        entity_name, entity_pages = named if named else (None, set())
        ranked = []
        for h in pool:
            own = h.kind != SOURCE and h.page in entity_pages
            ranked.append(replace(h, score=round(h.score * (ENTITY_BOOST if own else 1.0), 6),
                                  tier=1 if own else 3 if h.kind == SOURCE else 2))
        ranked.sort(key=lambda h: -h.score)  # stable: the search's order breaks ties
        hits = _without_repeats(ranked, k, min_sources=int(k * SOURCE_SHARE) if with_sources else 0)
        return Answer(question, hits[0].tier, TIER_NAMES[hits[0].tier], entity_name, tuple(hits))

    def _names_in(self, question: str) -> tuple[str, set[str]] | None:
        """The entity the question names (its display name) and its page paths, or None."""
        with self.session_factory() as session:
            self._names.refresh(session)
            found = self._names.find(question)
            if found is None:
                return None
            rows = session.execute(
                select(Entity.name, Entity.type, Entity.slug).where(Entity.id.in_(sorted(found[1]))).order_by(Entity.id)
            ).all()
        if not rows:
            return None
        return rows[0][0], {f"wiki/{type_}/{slug}.md" for _, type_, slug in rows}

    # --- tier 1 ----------------------------------------------------------------------------------

    def _tier_entity(self, question: str, k: int) -> tuple[str | None, list[Hit]]:
        with self.session_factory() as session:
            self._names.refresh(session)
            found = self._names.find(question)
            if found is None:
                return None, []
            key, entity_ids = found
            rows = session.execute(
                select(Entity.name, Entity.type, Entity.slug)
                .where(Entity.id.in_(sorted(entity_ids)))
                .order_by(Entity.id)
            ).all()
        entities = [(name, f"wiki/{type_}/{slug}.md") for name, type_, slug in rows]
        if not entities:
            return None, []
        by_page = self._indexed_sections([path for _, path in entities])
        missing = [path for _, path in entities if path not in by_page]
        if missing:  # not indexed (a wiki without search, or not yet): split the page read from git
            by_page.update(self._git_sections(missing, {p: n for n, p in entities}))
        asked = stems(question) - stems(key)
        chosen: list[tuple[float, int, str, str, Any]] = []  # (score, ordinal, title, path, section)
        for _name, path in entities:
            found = by_page.get(path)
            if not found:
                continue
            title, sections = found
            ranked = sorted(
                ((len(asked & stems(s.text)) / (1 + len(asked)), s) for s in sections),
                key=lambda pair: (-pair[0], pair[1].ordinal),
            )
            best = [(score, s) for score, s in ranked if score > 0][:k] or [(0.0, sections[0])]
            chosen += [(score, s.ordinal, title, path, s) for score, s in best]
        chosen.sort(key=lambda t: (-t[0], t[1]))
        chosen = chosen[:k]
        if not chosen:
            return None, []
        with self.session_factory() as session:
            cites = citations(session, [c for *_, s in chosen for c in s.claim_ids])
        hits = [
            Hit(
                SECTION,
                path,
                title if s.heading == title else f"{title}: {s.heading}",
                s.text,
                round(1.0 + score, 4),
                path,
                tuple(cites[c] for c in s.claim_ids if c in cites),
                1,
            )
            for score, _, title, path, s in chosen
        ]
        return entities[0][0], hits

    def _indexed_sections(self, paths: Sequence[str]) -> dict[str, tuple[str, list[Section]]]:
        """Sections of these pages as the page index holds them: path -> (page title, sections)."""
        out: dict[str, tuple[str, list[Section]]] = {}
        with self.session_factory() as session:
            rows = session.execute(
                select(Chunk.ref, Chunk.ordinal, Chunk.title, Chunk.text, Chunk.citations)
                .where(Chunk.kind == SECTION, Chunk.ref.in_(list(paths)))
                .order_by(Chunk.ref, Chunk.ordinal)
            ).all()
        for ref, ordinal, chunk_title, text, cites in rows:
            meta = cites if isinstance(cites, dict) else {}
            heading = str(meta.get("section") or chunk_title)
            claims = tuple(str(c) for c in meta.get("claims", []) if isinstance(c, str))
            # The chunk title is "<page title>: <heading>", or the page title for the lead section.
            page_title = chunk_title[: -len(heading) - 2] if chunk_title.endswith(f": {heading}") else chunk_title
            out.setdefault(str(ref), (page_title, []))[1].append(Section(int(ordinal), heading, str(text), claims))
        return out

    def _git_sections(self, paths: Sequence[str], names: dict[str, str]) -> dict[str, tuple[str, list[Section]]]:
        """Sections of pages read from git at HEAD and split now (for pages the index does not hold)."""
        head = self.store.head()
        if head is None:
            return {}
        out: dict[str, tuple[str, list[Section]]] = {}
        for path, result in self.store.read_many(paths, at=head).items():
            if result.content is None:
                continue
            meta, body = page_body(result.content.decode("utf-8", "replace"))
            title = str(meta.get("title") or names.get(path, path))
            sections = page_sections(body, title)
            if sections:
                out[path] = (title, sections)
        return out

    # --- tiers 2 and 3 ---------------------------------------------------------------------------

    def _tier_search(self, question: str, k: int, kinds: Sequence[str]) -> list[Hit]:
        if self.search is None or not words(question):
            return []
        # Gate: the tier answers only when its closest chunk is semantically close enough. BM25 alone
        # would accept any chunk sharing one word with the question.
        probe = self.search.search(question, k=1, kinds=list(kinds), mode="dense")
        if not probe or probe[0].score < self.min_similarity:
            return []
        raw = self.search.search(question, k=k, kinds=list(kinds))
        with self.session_factory() as session:
            return self._with_citations(session, raw)

    def _with_citations(self, session: Session, raw: Sequence[Any]) -> list[Hit]:
        claim_ids = [c for h in raw for c in (h.citations or {}).get("claims", [])]
        cites = citations(session, claim_ids)
        source_ids = sorted({h.ref for h in raw if h.kind == SOURCE})
        sources = (
            {s.id: s for s in session.scalars(select(Source).where(Source.id.in_(source_ids)))} if source_ids else {}
        )
        hits = []
        for h in raw:
            meta = h.citations or {}
            if h.kind == SOURCE:
                source = sources.get(h.ref)
                if source is None:
                    continue  # the source is gone from the ledger: do not cite what cannot be shown
                cite = Citation(
                    claim_id=None,
                    text="",
                    quote=h.text,
                    status=source.status,
                    source_id=source.id,
                    source_title=source.title or source.slug,
                    source_slug=source.slug,
                    source_page=source_page_path(source.slug),
                    source_status=source.status,
                )
                hits.append(Hit(SOURCE, h.ref, h.title, h.text, float(h.score), cite.source_page, (cite,), 3))
                continue
            ids = [c for c in meta.get("claims", []) if c in cites]
            if h.kind == CLAIM and not ids:
                continue  # a claim no longer in the ledger
            if h.kind == CLAIM and cites[ids[0]].status not in LIVE_CLAIMS:
                continue  # retracted or superseded since it was indexed
            page = meta.get("page") if isinstance(meta.get("page"), str) else None
            hits.append(Hit(h.kind, h.ref, h.title, h.text, float(h.score), page, tuple(cites[c] for c in ids), 2))
        return hits


def _fold(text: str) -> str:
    return " ".join(words(text))


def _without_repeats(ranked: Sequence[Hit], k: int, *, min_sources: int = 0) -> list[Hit]:
    """The first ``k`` hits of ``ranked`` that show something the ones before them did not, of which at
    least ``min_sources`` are raw chunks when ``ranked`` has that many (the order stays ``ranked``'s).

    A section or claim is a repeat when every quote it cites is shown already: cited by a chosen hit
    (several entities often cite the same sentence) or inside a chosen raw chunk. A section that cites
    nothing (a list of related pages) is left out: it is no evidence.
    """
    need = min(min_sources, sum(1 for h in ranked if h.kind == SOURCE))
    chosen: list[Hit] = []
    quotes: set[str] = set()  # folded quotes cited by chosen hits
    shown: list[str] = []  # folded texts of chosen raw chunks
    for h in ranked:
        if len(chosen) == k:
            break
        if h.kind != SOURCE and k - len(chosen) <= need - len(shown):
            continue  # the remaining places are the raw chunks'
        cited = {_fold(c.quote) for c in h.citations if c.claim_id and c.quote.strip()}
        if h.kind != SOURCE and not cited:
            continue  # a section that cites nothing (a Related list of links) is no evidence
        if h.kind != SOURCE and all(q in quotes or any(q in t for t in shown) for q in cited):
            continue
        chosen.append(h)
        quotes |= cited
        if h.kind == SOURCE:
            shown.append(_fold(h.text))
    return chosen
