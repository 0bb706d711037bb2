"""The search index on real SQLite (FTS5) with the real all-MiniLM-L6-v2 embedder."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, text

from search.dense import pack, unpack
from search.embedding import Embedder, SentenceTransformerEmbedder
from search.errors import IndexMismatch, SearchError
from search.fusion import fuse, minmax, rrf, top
from search.index import ChunkInput, SearchConfig, SearchIndex, ensure_index
from search.lexical import fts_query, pg_query
from search.text import analyze, chunk_text, estimate_tokens, index_text, query_terms
from store.db import make_engine
from store.models import Base

CORPUS = {
    "kafka": (
        "Kafka outage",
        "The Kafka cluster lost its controller after the disk of broker 3 filled up. Consumers lagged "
        "for two hours until the retention settings were lowered.",
    ),
    "dns": (
        "CoreDNS crash",
        "CoreDNS pods crashed after a bad ConfigMap was applied, and every service in the Kubernetes "
        "cluster returned 503 until the change was rolled back.",
    ),
    "payroll": (
        "Payroll team",
        "Alice Smith leads the payroll team in Copenhagen. She joined the company in 2019.",
    ),
    "cert": (
        "Expired certificate",
        "The TLS certificate of the public ingress expired on a Sunday; browsers refused the site "
        "until cert-manager renewed it.",
    ),
    "db": (
        "Database failover",
        "The primary PostgreSQL server ran out of connections and the replica was promoted by hand.",
    ),
    "cat": ("Office cat", "Whiskers the tabby sleeps on the warm radiator next to the espresso machine."),
}


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: SentenceTransformerEmbedder, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or inner.name
        self.dim = inner.dim
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(threads=1)


@pytest.fixture
def embedder(minilm: SentenceTransformerEmbedder) -> CountingEmbedder:
    return CountingEmbedder(minilm)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = make_engine(f"sqlite:///{tmp_path / 'lore.db'}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


def source_chunks() -> list[ChunkInput]:
    return [
        ChunkInput("source", ref, 0, body, title=title, citations={"source": ref})
        for ref, (title, body) in CORPUS.items()
    ]


@pytest.fixture
def index(engine: Engine, embedder: CountingEmbedder) -> SearchIndex:
    idx = SearchIndex(engine, embedder)
    assert idx.upsert(source_chunks()) == len(CORPUS)
    return idx


@pytest.fixture(scope="module")
def shared_index(tmp_path_factory: pytest.TempPathFactory, minilm: SentenceTransformerEmbedder) -> SearchIndex:
    """One read-only index for the tests that only search."""
    eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('shared') / 'lore.db'}")
    Base.metadata.create_all(eng)
    idx = SearchIndex(eng, minilm)
    idx.upsert(source_chunks())
    yield idx
    eng.dispose()


def refs(hits) -> list[str]:  # type: ignore[no-untyped-def]
    return [h.ref for h in hits]


# --- the index structures ---------------------------------------------------------------------


def test_ensure_index_is_idempotent_and_keeps_content(engine: Engine, index: SearchIndex) -> None:
    ensure_index(engine)
    ensure_index(engine)
    with engine.connect() as conn:
        names = [r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE name LIKE 'chunks_fts%'"))]
        assert names.count("chunks_fts") == 1
        assert "chunks_fts_vocab" in names
        # every shadow table carries the prefix Alembic ignores
        assert all(n.startswith("chunks_fts") for n in names)
    assert refs(index.search("controller broker", 1, kinds=("source",), mode="bm25")) == ["kafka"]


def test_an_analyzer_change_rebuilds_the_full_text_table(engine: Engine, index: SearchIndex) -> None:
    # The SQL side reads the table directly. A fresh instance rebuilds a stale table on first use
    # (``ensure_index``), so this one is set up before the table goes stale.
    sql = SearchIndex(engine, index.embedder, SearchConfig(lexical="sql"))
    sql.ensure_index()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO chunks_fts(chunks_fts) VALUES ('delete-all')"))
        conn.execute(text("UPDATE index_state SET commit_id = 'older-analyzer' WHERE name = 'search:fts'"))
    assert sql.search("controller broker", 1, kinds=("source",), mode="bm25") == []
    ensure_index(engine)
    assert refs(sql.search("controller broker", 1, kinds=("source",), mode="bm25")) == ["kafka"]


def test_fts_created_for_existing_chunks_is_filled(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    Base.metadata.create_all(eng)
    SearchIndex(eng, minilm).upsert(source_chunks()[:2])
    with eng.begin() as conn:
        conn.execute(text("DROP TABLE chunks_fts_vocab"))
        conn.execute(text("DROP TABLE chunks_fts"))
    ensure_index(eng)
    fresh = SearchIndex(eng, minilm, SearchConfig(lexical="sql"))
    assert refs(fresh.search("ConfigMap", 1, kinds=("source",), mode="bm25")) == ["dns"]
    eng.dispose()


# --- writes -----------------------------------------------------------------------------------


def test_upsert_is_idempotent_and_does_not_re_embed(index: SearchIndex, embedder: CountingEmbedder) -> None:
    embedded = len(embedder.texts)
    assert index.upsert(source_chunks()) == 0
    assert len(embedder.texts) == embedded

    changed = ChunkInput(
        "source", "cat", 0, "Whiskers now sleeps in the server room on a warm switch.", title="Office cat"
    )
    assert index.upsert([changed, *source_chunks()[:2]]) == 1
    assert all("Whiskers" in t for t in embedder.texts[embedded:])
    with index.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM chunks")).scalar_one() == len(CORPUS)
    # the old wording is gone from the lexical index, the new one is there
    assert "cat" not in refs(index.search("radiator espresso", 5, kinds=("source",), mode="bm25"))
    assert refs(index.search("server room switch", 1, kinds=("source",), mode="bm25")) == ["cat"]


def test_citation_change_updates_without_re_embedding(index: SearchIndex, embedder: CountingEmbedder) -> None:
    embedded = len(embedder.texts)
    title, body = CORPUS["payroll"]
    assert index.upsert([ChunkInput("source", "payroll", 0, body, title=title, citations={"claims": ["c1"]})]) == 0
    assert len(embedder.texts) == embedded
    hit = index.search("who leads payroll", 1, kinds=("source",))[0]
    assert (hit.ref, hit.citations) == ("payroll", {"claims": ["c1"]})


def test_delete_removes_from_both_lists(index: SearchIndex) -> None:
    assert index.delete("source", "kafka") == 1
    assert index.delete("source", "kafka") == 0
    for mode in ("bm25", "dense", "hybrid"):
        assert "kafka" not in refs(index.search("Kafka consumers lagged", 10, kinds=("source",), mode=mode))


def test_replace_drops_ordinals_no_longer_given(engine: Engine, embedder: CountingEmbedder) -> None:
    idx = SearchIndex(engine, embedder)
    parts = ["Alpha part about llamas.", "Beta part about alpacas.", "Gamma part about vicunas."]
    assert idx.upsert([ChunkInput("source", "doc", i, p) for i, p in enumerate(parts)]) == 3
    assert idx.upsert([ChunkInput("source", "doc", i, p) for i, p in enumerate(parts[:2])], replace=True) == 0
    assert idx.search("vicunas", 5, kinds=("source",), mode="bm25") == []
    assert [h.ordinal for h in idx.search("alpacas", 5, kinds=("source",), mode="bm25")] == [1]


def test_unknown_kind_or_mode_is_refused(index: SearchIndex) -> None:
    with pytest.raises(SearchError):
        index.upsert([ChunkInput("page", "x", 0, "text")])
    with pytest.raises(SearchError):
        index.search("kafka", kinds=("page",))
    with pytest.raises(SearchError):
        index.search("kafka", mode="sparse")  # type: ignore[arg-type]


def test_another_embedder_name_is_refused(index: SearchIndex, minilm: SentenceTransformerEmbedder) -> None:
    other = SearchIndex(index.engine, CountingEmbedder(minilm, name="another-model"))
    with pytest.raises(IndexMismatch):
        other.search("kafka", kinds=("source",))


# --- reads ------------------------------------------------------------------------------------


def test_bm25_finds_the_exact_rare_term(shared_index: SearchIndex) -> None:
    hits = shared_index.search("ConfigMap rollback", 3, kinds=("source",), mode="bm25")
    assert refs(hits)[0] == "dns"
    assert hits[0].title == "CoreDNS crash"
    assert hits[0].citations == {"source": "dns"}


def test_dense_finds_a_paraphrase_with_no_shared_word(shared_index: SearchIndex) -> None:
    query = "feline napping near heater"
    assert shared_index.search(query, 3, kinds=("source",), mode="bm25") == []
    assert refs(shared_index.search(query, 1, kinds=("source",), mode="dense")) == ["cat"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("feline napping near heater", "cat"),  # dense only
        ("ConfigMap", "dns"),  # an identifier
        ("who runs salaries in Copenhagen", "payroll"),
        ("website down because tls cert expired", "cert"),
        ("replica promoted postgres connections", "db"),
    ],
)
def test_hybrid_ranks_the_expected_passage_first(shared_index: SearchIndex, query: str, expected: str) -> None:
    assert refs(shared_index.search(query, 3, kinds=("source",)))[0] == expected


def test_rrf_fusion_can_replace_the_default(shared_index: SearchIndex, minilm: SentenceTransformerEmbedder) -> None:
    plain = SearchIndex(shared_index.engine, minilm, SearchConfig(fusion="rrf", feedback_docs=0))
    query = "cluster outage after a bad change"
    lexical = [i for i, _ in plain.rank(query, 10, ("source",), "bm25")]
    dense = [i for i, _ in plain.rank(query, 10, ("source",), "dense")]
    fused = plain.rank(query, 10, ("source",), "hybrid")
    expected = rrf([lexical, dense], k=60)
    assert [i for i, _ in fused] == top(expected, 10)
    assert [s for _, s in fused] == pytest.approx([expected[i] for i, _ in fused])


def test_kinds_are_searched_separately(index: SearchIndex) -> None:
    index.upsert([ChunkInput("claim", "c-1", 0, "The Kafka controller moved to broker 5 in 2024.", title="Kafka")])
    assert set(refs(index.search("Kafka controller", 10, kinds=("claim",)))) == {"c-1"}
    assert "c-1" not in refs(index.search("Kafka controller", 10, kinds=("source",)))
    assert index.search("Kafka", 10, kinds=("section",)) == []


def test_the_in_memory_lexical_side_ranks_as_the_full_text_table_does(
    engine: Engine, index: SearchIndex, minilm: SentenceTransformerEmbedder
) -> None:
    """The default (postings in memory) and ``lexical="sql"`` (FTS5) on one database with three kinds,
    through an update, a delete and a restart: same chunks, same BM25 scores, same hybrid answer."""
    sql = SearchIndex(engine, minilm, SearchConfig(lexical="sql"))
    queries = ["Kafka controller broker", "cluster crashed", "certificate expired", "payroll Copenhagen"]

    def assert_alike(memory: SearchIndex) -> None:
        for q in queries:
            for kinds in (("source",), ("section", "claim")):
                got, want = memory.rank(q, 20, kinds, "bm25"), sql.rank(q, 20, kinds, "bm25")
                assert [i for i, _ in got] == [i for i, _ in want], (q, kinds)
                assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-5)
                got, want = memory.rank(q, 5, kinds), sql.rank(q, 5, kinds)
                assert [i for i, _ in got] == [i for i, _ in want], (q, kinds)
                assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-4)

    index.upsert([
        ChunkInput("claim", "c-1", 0, "The Kafka controller moved to broker 5 in 2024.", title="Kafka"),
        ChunkInput("section", "kafka.md", 0, "The cluster crashed twice; the broker disk filled.", title="Kafka"),
        ChunkInput("section", "kafka.md", 1, "Consumers lagged behind the controller.", title="Kafka"),
    ])  # fmt: skip
    assert index.rank("Kafka controller broker", 5, ("section", "claim"), "bm25")  # not two empty lists
    assert_alike(index)
    index.upsert([ChunkInput("source", "dns", 0, "The Kafka cluster crashed: a certificate expired.", title="DNS")])
    index.delete("section", "kafka.md")
    assert_alike(index)
    assert_alike(SearchIndex(engine, minilm))  # a restarted process loads the same postings


def test_a_write_by_another_instance_reaches_the_cached_vectors(index: SearchIndex, minilm) -> None:  # type: ignore[no-untyped-def]
    assert refs(index.search("kitten on the radiator", 1, kinds=("source",), mode="dense")) == ["cat"]
    other = SearchIndex(index.engine, minilm)
    other.upsert([ChunkInput("source", "kitten", 0, "A small kitten curled up on the radiator.")])
    assert refs(index.search("kitten on the radiator", 1, kinds=("source",), mode="dense")) == ["kitten"]
    other.delete("source", "kitten")
    assert "kitten" not in refs(index.search("kitten on the radiator", 10, kinds=("source",), mode="dense"))


def test_long_chunks_get_window_vectors(engine: Engine, embedder: CountingEmbedder) -> None:
    idx = SearchIndex(engine, embedder, SearchConfig(window_tokens=20))
    long_text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(12))
    idx.upsert([ChunkInput("source", "long", 0, long_text), ChunkInput("source", "short", 0, "Tiny.")])
    with engine.connect() as conn:
        blobs = dict(conn.execute(text("SELECT ref, embedding FROM chunks")).all())
    assert unpack(blobs["short"], embedder.dim).shape == (1, embedder.dim)
    rows = unpack(blobs["long"], embedder.dim)
    assert rows.shape[0] == 1 + len(chunk_text(long_text, 20)) > 2
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_empty_and_stopword_queries(shared_index: SearchIndex) -> None:
    assert shared_index.search("   ", kinds=("source",)) == []
    assert shared_index.search("the of and", kinds=("source",), mode="bm25") == []
    assert len(shared_index.search("the of and", 3, kinds=("source",))) == 3  # dense still answers


# --- pure pieces ------------------------------------------------------------------------------


def test_rrf_math() -> None:
    fused = rrf([[1, 2, 3], [3, 1]], k=60)
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2] == pytest.approx(1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert top(fused, 3) == [1, 3, 2]
    weighted = rrf([[1], [2]], k=0, weights=[1.0, 3.0])
    assert weighted == {1: 1.0, 2: 3.0}
    with pytest.raises(ValueError, match="one weight"):
        rrf([[1]], weights=[1.0, 2.0])


def test_minmax_and_convex_fusion() -> None:
    assert minmax({1: 2.0, 2: 4.0, 3: 3.0}) == {1: 0.0, 2: 1.0, 3: 0.5}
    assert minmax({7: 5.0}) == {7: 1.0}
    fused = fuse({1: 10.0, 2: 0.0}, {2: 0.9, 3: 0.1}, bm25_weight=0.25)
    assert fused == pytest.approx({1: 0.25, 2: 0.75, 3: 0.0})
    assert top({1: 1.0, 2: 1.0, 0: 0.5}, 2) == [1, 2]


def test_pack_round_trip_and_width_check() -> None:
    m = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(unpack(pack(m), 3), m)
    with pytest.raises(IndexMismatch):
        unpack(pack(m), 4)


def test_analyzer_and_queries() -> None:
    assert [t.stem for t in analyze("The Cafés were running!")] == ["cafe", "run"]
    assert index_text("Bobby Carpenter's teams") == "bobbi carpent team"
    q = query_terms("What sport is Bobby Carpenter associated with?")
    assert [t.stem for t in q.terms] == ["sport", "bobbi", "carpent", "associ"]
    assert [(a.stem, b.stem) for a, b in q.phrases] == [("bobbi", "carpent"), ("carpent", "associ")]
    assert fts_query(["a1", "b"], [("a1", "b")]) == '"a1" OR "b" OR "a1 b"'
    assert (
        pg_query(["bobby", "carpenter"], [("bobby", "carpenter")])
        == "'bobby' | 'carpenter' | ('bobby' <-> 'carpenter')"
    )
    # quotes and operators never reach the query syntax: only letters and digits make terms
    assert [t.stem for t in query_terms("x\" OR NEAR(a) '; DROP").terms] == ["x", "near", "drop"]


def test_chunk_text_cuts_at_sentences_with_overlap() -> None:
    sentences = [f"Sentence {i} has exactly seven tokens." for i in range(10)]
    text_ = " ".join(sentences)
    assert estimate_tokens(sentences[0]) == 7
    chunks = chunk_text(text_, target_tokens=21, overlap=7)
    assert all(estimate_tokens(c) <= 21 for c in chunks)
    assert all(c.endswith(".") for c in chunks)
    assert chunks[0] == " ".join(sentences[:3])
    assert chunks[1].startswith(sentences[2])  # one sentence of overlap
    covered = " ".join(chunks)
    assert all(s in covered for s in sentences)


def test_chunk_text_edges() -> None:
    assert chunk_text("   ") == []
    assert chunk_text("Short text.", 50) == ["Short text."]
    para = "First paragraph one.\n\nSecond paragraph two."
    assert chunk_text(para, 4) == ["First paragraph one.", "Second paragraph two."]
    assert chunk_text(para, 8) == [para]
    long_sentence = " ".join(["word"] * 25)
    assert [estimate_tokens(c) for c in chunk_text(long_sentence, 10)] == [10, 10, 5]
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("x", 10, overlap=10)


# --- the embedder -----------------------------------------------------------------------------


def test_embedder_vectors_are_normalised_float32(minilm: SentenceTransformerEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    vecs = minilm.embed(["a cat", "a kitten", "tax law"])
    assert vecs.dtype == np.float32
    assert vecs.shape == (3, 384) == (3, minilm.dim)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
    assert minilm.embed([]).shape == (0, 384)


def test_embedder_is_thread_safe(minilm: SentenceTransformerEmbedder) -> None:
    texts = [f"text number {i} about {w}" for i, w in enumerate(["rivers", "mountains", "cities", "songs"])]
    serial = minilm.embed(texts)
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = minilm.embed([texts[i]])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(len(texts)):
        assert np.allclose(results[i][0], serial[i], atol=1e-5)


def test_embedder_loads_lazily_from_a_local_folder(tmp_path: Path) -> None:
    lazy = SentenceTransformerEmbedder()
    assert lazy._model is None  # nothing loaded until first use
    missing = SentenceTransformerEmbedder(tmp_path / "no-model")
    with pytest.raises(SearchError, match="not found"):
        missing.embed(["x"])
