"""The in-memory lexical index against SQLite FTS5 on the same rows, through writes, deletes and restarts.

Rows are written the way ``SearchIndex`` writes them (chunk row, full-text row and generation token in
one transaction) but without vectors, so many writes stay cheap; ``test_search.py`` covers the index
end to end with the real embedder.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, insert, select, update

from search.index import KINDS, ensure_index
from search.lexical import TITLE_WEIGHT, LexicalBackend
from search.lexical_cache import LexicalCache
from search.text import Term, query_terms
from store import search_state
from store.db import make_engine, read_only
from store.models import Base, Chunk
from tests.services import postgres_server

_C = Chunk.__table__.c
WORDS = (
    "kafka broker controller disk retention consumer lag dns configmap pod cluster certificate ingress "
    "renew postgres replica failover payroll team copenhagen cat radiator espresso outage crash expired"
).split()
QUERIES = [
    "kafka broker",
    "controller disk retention",
    "dns pod crash",
    "certificate expired ingress renew",
    "postgres replica failover",
    "payroll team copenhagen",
    "cat espresso radiator",
    "cluster outage",
    "lag",
]


class Store:
    """Chunk rows plus the FTS5 table, written like ``SearchIndex.upsert`` / ``delete`` do."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.fts = LexicalBackend(engine.dialect.name)  # maintenance is a no-op on PostgreSQL

    def put(self, kind: str, ref: str, title: str, body: str) -> None:
        digest = hashlib.sha256(f"{title}\x00{body}".encode()).hexdigest()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(_C.id, _C.title, _C.text).where(_C.kind == kind, _C.ref == ref, _C.ordinal == 0)
            ).first()
            values = {"title": title, "text": body, "content_hash": digest, "citations": {}}
            if row is None:
                stmt = insert(Chunk).values(kind=kind, ref=ref, ordinal=0, **values)
                cid = int(conn.execute(stmt).inserted_primary_key[0])
            else:
                cid = int(row[0])
                self.fts.remove(conn, [(cid, row[1], row[2])])
                conn.execute(update(Chunk).where(_C.id == cid).values(**values))
            self.fts.add(conn, [(cid, title, body)])
            search_state.touch(conn, [kind])

    def drop(self, kind: str, ref: str) -> None:
        with self.engine.begin() as conn:
            rows = conn.execute(select(_C.id, _C.title, _C.text).where(_C.kind == kind, _C.ref == ref)).all()
            self.fts.remove(conn, [(int(r[0]), r[1], r[2]) for r in rows])
            conn.execute(delete(Chunk).where(_C.kind == kind, _C.ref == ref))
            search_state.touch(conn, [kind])

    def refresh(self, cache: LexicalCache) -> None:
        with read_only(self.engine).connect() as conn:  # as the API's searches do: no write lock
            for kind, token in search_state.generations(conn, KINDS).items():
                cache.refresh(conn, kind, token)
            conn.rollback()

    def sql(self, query: str, kinds: tuple[str, ...], n: int = 200) -> list[tuple[int, float]]:
        qt = query_terms(query)
        with self.engine.connect() as conn:
            return self.fts.search(conn, qt.terms, qt.phrases, kinds, n)

    def sql_doc_freqs(self, stems: list[str]) -> tuple[int, dict[str, int]]:
        with self.engine.connect() as conn:
            return self.fts.doc_freqs(conn, [Term(s, s) for s in stems])


def memory(cache: LexicalCache, query: str, kinds: tuple[str, ...], n: int = 200) -> list[tuple[int, float]]:
    qt = query_terms(query)
    return cache.search(kinds, [t.stem for t in qt.terms], [(a.stem, b.stem) for a, b in qt.phrases], n, KINDS)


def assert_same_ranking(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    """Same chunks with the same scores (float32 against FTS5's doubles); ties may come in any order."""
    assert sorted(i for i, _ in got) == sorted(i for i, _ in want)
    by_id = dict(want)
    for i, score in got:
        assert score == pytest.approx(by_id[i], rel=1e-5, abs=1e-6)
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-5, abs=1e-6)


def assert_matches_fts(store: Store, cache: LexicalCache) -> None:
    for kinds in (("source",), ("section", "claim"), KINDS):
        for q in QUERIES:
            assert_same_ranking(memory(cache, q, kinds), store.sql(q, kinds))


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'lore.db'}")
    Base.metadata.create_all(eng)
    ensure_index(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: Engine) -> Store:
    s = Store(engine)
    rng = random.Random(7)
    for i in range(40):
        kind = KINDS[i % 3]
        s.put(kind, f"r{i}", sentence(rng, 3), sentence(rng, 5 + i % 17))
    return s


def test_scores_are_fts5_bm25_over_every_kind(store: Store) -> None:
    cache = LexicalCache(TITLE_WEIGHT)
    store.refresh(cache)
    assert_matches_fts(store, cache)
    assert memory(cache, "kafka", ("source",))  # the comparison is not between two empty lists
    assert memory(cache, "zebra", KINDS) == []


def test_doc_freqs_match_the_vocabulary_table(store: Store) -> None:
    cache = LexicalCache(TITLE_WEIGHT)
    store.refresh(cache)
    stems = [t.stem for t in query_terms("kafka broker retention payroll zebra").terms]
    total, dfs = cache.doc_freqs(KINDS, stems)
    assert (total, dfs) == store.sql_doc_freqs(stems)
    assert "zebra" not in dfs
    assert total == 40


def test_writes_updates_and_deletes_keep_it_equal_to_the_table(store: Store) -> None:
    """Random writes, rewrites and deletes; after each batch the cache answers like FTS5 and like a
    cache loaded from scratch, and it has gone through both a delta and a compaction."""
    rng = random.Random(11)
    cache = LexicalCache(TITLE_WEIGHT)
    store.refresh(cache)
    analyzed_at_start = cache.loaded_chunks
    compacted = with_delta = False
    for step in range(20):
        for _ in range(rng.randint(1, 40)):
            kind, ref = rng.choice(KINDS), f"r{rng.randint(0, 70)}"
            if rng.random() < 0.3:
                store.drop(kind, ref)
            else:
                store.put(kind, ref, sentence(rng, 2), sentence(rng, rng.randint(0, 20)))
        before = cache.stats()
        store.refresh(cache)
        after = cache.stats()
        with_delta |= after["delta_chunks"] > 0
        compacted |= after["delta_chunks"] < before["delta_chunks"]
        assert_matches_fts(store, cache)
        fresh = LexicalCache(TITLE_WEIGHT)
        store.refresh(fresh)
        assert after["chunks"] == fresh.stats()["chunks"], step
        for q in QUERIES:
            assert_same_ranking(memory(cache, q, KINDS), memory(fresh, q, KINDS))
    assert with_delta
    assert compacted
    # only changed chunks were analyzed again, not the whole table on every refresh
    assert cache.loaded_chunks - analyzed_at_start < 20 * 40


def test_an_unchanged_token_reads_nothing(store: Store, engine: Engine) -> None:
    cache = LexicalCache(TITLE_WEIGHT)
    store.refresh(cache)
    loaded = cache.loaded_chunks
    store.refresh(cache)
    assert cache.loaded_chunks == loaded
    store.put("claim", "r1", "kafka", "a rewritten claim about espresso")
    store.refresh(cache)
    assert cache.loaded_chunks == loaded + 1


def test_a_second_process_view_sees_the_first_ones_writes(store: Store, engine: Engine, tmp_path: Path) -> None:
    """Two caches on two engines (two processes' worth): a write through one reaches the other by its
    generation token alone; a restart (a new cache) loads the same postings."""
    mine = LexicalCache(TITLE_WEIGHT)
    store.refresh(mine)
    other = Store(make_engine(f"sqlite:///{tmp_path / 'lore.db'}"))
    other.put("source", "new", "Zebra crossing", "a zebra crossed the kafka cluster")
    other.drop("section", "r1")
    store.refresh(mine)
    assert [i for i, _ in memory(mine, "zebra", KINDS)] == [i for i, _ in store.sql("zebra", KINDS)]
    assert len(memory(mine, "zebra", KINDS)) == 1
    assert_matches_fts(store, mine)
    restarted = LexicalCache(TITLE_WEIGHT)
    store.refresh(restarted)
    for q in QUERIES:
        assert_same_ranking(memory(restarted, q, KINDS), memory(mine, q, KINDS))
    other.engine.dispose()


def test_a_kind_never_refreshed_is_neither_searched_nor_counted(store: Store, engine: Engine) -> None:
    cache = LexicalCache(TITLE_WEIGHT)
    with engine.connect() as conn:
        token = search_state.generations(conn, ["source"])["source"]
        cache.refresh(conn, "source", token)
    assert cache.stats()["chunks"] == 14  # r0, r3, ... r39
    assert memory(cache, "kafka broker", ("section",)) == []
    cache.invalidate()
    assert cache.stats()["chunks"] == 0


def test_a_search_does_not_wait_for_a_refresh_of_a_newer_generation(store: Store, engine: Engine) -> None:
    """While one thread is part-way through loading a newer generation, a search at the loaded one
    answers at once from the published view."""
    entered, release = threading.Event(), threading.Event()

    class Slow(LexicalCache):
        def _update(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            entered.set()
            assert release.wait(10)
            return super()._update(*args, **kwargs)

    cache = Slow(TITLE_WEIGHT)
    store.refresh(cache)
    old = memory(cache, "kafka broker", KINDS)
    store.put("source", "r0", "kafka kafka", "kafka broker kafka broker")
    writer = threading.Thread(target=store.refresh, args=(cache,))
    writer.start()
    try:
        assert entered.wait(10)
        done: list[list[tuple[int, float]]] = []

        def read() -> None:
            with read_only(engine).connect() as conn:  # the reader's own token is still the old one
                cache.refresh(conn, "claim", search_state.generations(conn, ["claim"])["claim"])
            done.append(memory(cache, "kafka broker", KINDS))

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), "the search waited for the refresh"
        assert done == [old]
    finally:
        release.set()
        writer.join(10)
    assert memory(cache, "kafka broker", KINDS) != old
    assert_matches_fts(store, cache)


def test_readers_see_whole_generations_while_a_writer_refreshes(store: Store, engine: Engine) -> None:
    """A writer flips one chunk between two texts and refreshes; every search by four reader threads
    returns exactly the ranking of one of the two states, never a mix or an error."""
    cache = LexicalCache(TITLE_WEIGHT)
    texts = ("espresso espresso radiator", "kafka broker controller")
    expected = []
    for body in texts:
        store.put("source", "flip", "cat", body)
        store.refresh(cache)
        expected.append(memory(cache, "cat espresso kafka", KINDS))
    assert expected[0] != expected[1]
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                got = memory(cache, "cat espresso kafka", KINDS)
                seen.append(next(i for i, e in enumerate(expected) if got == e))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    for n in range(30):
        store.put("source", "flip", "cat", texts[n % 2])
        store.refresh(cache)
    stop.set()
    for t in readers:
        t.join(10)
    assert errors == []
    assert set(seen) == {0, 1}


def by_ref(engine: Engine, ranked: list[tuple[int, float]]) -> list[tuple[str, str, float]]:
    with engine.connect() as conn:
        names = {int(r[0]): (r[1], r[2]) for r in conn.execute(select(_C.id, _C.kind, _C.ref))}
    return [(*names[i], score) for i, score in ranked]


def test_postgresql_ranks_like_sqlite(engine: Engine) -> None:
    """The in-memory side reads nothing dialect-specific: the same writes on a real PostgreSQL and on
    SQLite give the same chunks and scores (PostgreSQL ids are never reused, so compare by ref)."""
    with postgres_server() as url:
        pg = make_engine(url)
        try:
            Base.metadata.create_all(pg)
            ensure_index(pg)
            stores = [Store(engine), Store(pg)]
            caches = [LexicalCache(TITLE_WEIGHT), LexicalCache(TITLE_WEIGHT)]
            rng = random.Random(5)
            for step in range(3):
                ops = []
                for _ in range(30):
                    kind, ref = rng.choice(KINDS), f"r{rng.randint(0, 40)}"
                    ops.append((kind, ref, None if rng.random() < 0.2 else (sentence(rng, 2), sentence(rng, 9))))
                for st, cache in zip(stores, caches, strict=True):
                    for kind, ref, content in ops:
                        if content is None:
                            st.drop(kind, ref)
                        else:
                            st.put(kind, ref, *content)
                    st.refresh(cache)
                for q in QUERIES:
                    for kinds in (("source",), ("section", "claim")):
                        lite, post = (
                            by_ref(st.engine, memory(c, q, kinds)) for st, c in zip(stores, caches, strict=True)
                        )
                        assert sorted(r[:2] for r in lite) == sorted(r[:2] for r in post), (step, q)
                        assert [r[2] for r in lite] == pytest.approx([r[2] for r in post], rel=1e-5)
                assert caches[1].stats()["chunks"] == caches[0].stats()["chunks"] > 0
        finally:
            pg.dispose()
