"""Query tiers and the page index, with the real embedder and the hybrid search index."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from search.page_index import index_page, page_chunks, page_sections, reindex_all
from search.tiers import QueryEngine
from store.models import Chunk, Claim, Source
from tests.api.wiki_builder import WikiFixture

Indexed = tuple[WikiFixture, Any]


def engine_for(indexed: Indexed) -> QueryEngine:
    fx, search = indexed
    return QueryEngine(fx.session_factory, fx.store, search)


def test_page_sections_split_at_headings_without_footnote_definitions() -> None:
    body = (
        "# Title\n\nLead text cites [^a1].\n\n## Facts\n\n- one fact [^b2]\n- two [^a1]\n\n"
        '```\n# not a heading\n```\n\n## Empty\n\n[^a1]: [[src]]: "quote a"\n[^b2]: [[src]]: "quote b"\n'
    )
    sections = page_sections(body, "Title")
    assert [s.heading for s in sections] == ["Title", "Facts"]
    assert sections[0].claim_ids == ("a1",)
    assert sections[1].claim_ids == ("b2", "a1")
    assert "- one fact" in sections[1].text
    assert "not a heading" not in [s.heading for s in sections]  # a '#' line in a code block is no heading
    assert all("quote" not in s.text for s in sections)


def test_page_chunks_index_only_active_claims(wiki_fx: WikiFixture) -> None:
    text = wiki_fx.store.read(wiki_fx.paths["payments"]).content.decode()  # type: ignore[union-attr]
    with wiki_fx.session_factory() as session:
        claims = list(session.scalars(select(Claim).where(Claim.entity_id == wiki_fx.entity_ids["payments"])))
    claims[0].status = "retracted"
    chunks = page_chunks(wiki_fx.paths["payments"], text, claims)
    claim_refs = {c.ref for c in chunks if c.kind == "claim"}
    assert claim_refs == {c.id for c in claims[1:]}
    facts = next(c for c in chunks if c.kind == "section" and c.citations["section"] == "Facts")
    assert set(facts.citations["claims"]) == {c.id for c in claims}
    assert facts.title == "Payments API: Facts"


def test_tier1_entity_named_by_alias(indexed_wiki: Indexed) -> None:
    answer = engine_for(indexed_wiki).answer("Who owns the payments service?")
    assert (answer.tier, answer.answered_by, answer.entity) == (1, "entity", "Payments API")
    top = answer.hits[0]
    assert top.page == "wiki/services/payments-api.md"
    assert "owned by the Core team" in top.text
    assert "c0payown1111" in [c.claim_id for c in top.citations]
    assert all(c.source_title for c in top.citations)


def test_tier1_longest_name_wins_on_word_boundaries(indexed_wiki: Indexed) -> None:
    engine = engine_for(indexed_wiki)
    assert engine.answer("does the core team run kubernetes?").entity == "Core team"
    assert engine.answer("What does K8S run?").entity == "Kubernetes"
    assert engine.answer("what does k8sx mean").tier != 1
    conflict = engine.answer("which version does kubernetes run?")
    assert conflict.hits[0].title == "Kubernetes: Conflicting sources"
    assert {c.claim_id for c in conflict.hits[0].citations} == {"c0k8s128bbbb", "c0k8s129aaaa"}


def test_tier2_page_sections_and_claims(indexed_wiki: Indexed) -> None:
    answer = engine_for(indexed_wiki).answer("what caused the 503 errors?", tier=2)
    assert (answer.tier, answer.answered_by) == (2, "pages")
    assert answer.hits[0].kind in ("claim", "section")
    cited = {c.claim_id: c for h in answer.hits for c in h.citations}
    assert "c0pay503222" in cited
    assert cited["c0pay503222"].source_title == "Incident 2024-03 postmortem"
    assert cited["c0pay503222"].quote.startswith("The Payments API returned 503 errors")


def test_tier3_raw_sources_when_no_page_answers(indexed_wiki: Indexed) -> None:
    fx, _ = indexed_wiki
    answer = engine_for(indexed_wiki).answer("how long are backups kept in cold storage?")
    assert (answer.tier, answer.answered_by) == (3, "sources")
    top = answer.hits[0]
    assert (top.kind, top.ref) == ("source", fx.source_ids["backups"])
    assert "35 days" in top.text
    assert top.citations[0].source_title == "Backup runbook"
    assert top.citations[0].claim_id is None


def test_no_tier_answers_an_unrelated_question(indexed_wiki: Indexed) -> None:
    answer = engine_for(indexed_wiki).answer("what is the recipe for banana bread?")
    assert (answer.tier, answer.answered_by, answer.hits) == (0, "none", ())


def test_forced_tier(indexed_wiki: Indexed) -> None:
    answer = engine_for(indexed_wiki).answer("what caused the 503 errors?", tier=3)
    assert answer.tier == 3
    assert answer.hits[0].ref == indexed_wiki[0].source_ids["incident"]


def test_query_route_with_search(make_client: Callable[..., TestClient], indexed_wiki: Indexed) -> None:
    fx, search = indexed_wiki
    client = make_client(fx, search=search)
    body = client.get("/query", params={"q": "how long are backups kept in cold storage?", "k": 2}).json()
    assert body["tier"] == 3
    assert body["answered_by"] == "sources"
    assert len(body["hits"]) <= 2
    assert body["hits"][0]["citations"][0]["source_title"] == "Backup runbook"
    html = client.get("/ui/search", params={"q": "what caused the 503 errors?"}).text
    assert "ranked together" in html
    assert '<span class="from">wiki</span>' in html  # a claim or section of the wiki among the hits
    assert "Incident 2024-03 postmortem" in html
    assert client.get("/query", params={"q": ""}).status_code == 422


def test_retraction_drops_claim_hits_and_chunks(tmp_path_factory: Any, embedder: Any) -> None:
    from search.index import SearchIndex
    from tests.api.wiki_builder import build_wiki

    fx = build_wiki(tmp_path_factory.mktemp("retract"))
    search = SearchIndex(fx.session_factory.kw["bind"], embedder)
    with fx.session_factory() as session:
        first = reindex_all(session, fx.store, search)
    assert first.written > 0
    with fx.session_factory() as session:
        again = reindex_all(session, fx.store, search)
    assert (again.written, again.removed) == (0, 0)  # nothing changed: nothing re-embedded

    engine = QueryEngine(fx.session_factory, fx.store, search)
    before = engine.answer("when do deploys of the payments api happen? tuesday", tier=2)
    assert "c0paydeploy3" in {c.claim_id for h in before.hits for c in h.citations}
    with fx.session_factory() as session:
        claim = session.get(Claim, "c0paydeploy3")
        assert claim is not None
        claim.status = "retracted"
        session.commit()
    hits = engine.answer("when do deploys of the payments api happen? tuesday", tier=2).hits
    assert "c0paydeploy3" not in {h.ref for h in hits if h.kind == "claim"}  # filtered by the ledger

    path = fx.paths["payments"]
    text = fx.store.read(path).content.decode()  # type: ignore[union-attr]
    with fx.session_factory() as session:
        claims = list(session.scalars(select(Claim).where(Claim.entity_id == fx.entity_ids["payments"])))
        session.expunge_all()
    index_page(search, path, text, claims)
    with fx.session_factory() as session:
        refs = set(session.scalars(select(Chunk.ref).where(Chunk.kind == "claim")))
        assert "c0paydeploy3" not in refs
        assert "c0payown1111" in refs
        source = session.get(Source, fx.source_ids["backups"])
        assert source is not None
        source.status = "retracted"
        session.commit()
    with fx.session_factory() as session:
        stats = reindex_all(session, fx.store, search)
    assert stats.removed == 1
    with fx.session_factory() as session:
        assert session.scalar(select(Chunk.id).where(Chunk.ref == fx.source_ids["backups"])) is None


def test_tier1_answers_from_indexed_sections_without_reading_git(indexed_wiki: Indexed, monkeypatch: Any) -> None:
    fx, search = indexed_wiki
    engine = QueryEngine(fx.session_factory, fx.store, search)
    expected = engine.answer("Who owns the payments service?")

    def no_git(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("tier 1 read the page from git although the index holds its sections")

    monkeypatch.setattr(fx.store, "read_many", no_git)
    monkeypatch.setattr(fx.store, "head", no_git)
    answer = engine.answer("Who owns the payments service?")
    assert answer == expected
    assert answer.tier == 1
    # A wiki without a page index still answers tier 1, from git.
    monkeypatch.undo()
    unindexed = QueryEngine(fx.session_factory, fx.store, None)
    with fx.session_factory() as session:
        indexed_pages = {r for (r,) in session.execute(select(Chunk.ref).where(Chunk.kind == "section"))}
    assert "wiki/services/payments-api.md" in indexed_pages
    assert unindexed._git_sections(["wiki/services/payments-api.md"], {})["wiki/services/payments-api.md"][1]


def test_fused_answer_ranks_wiki_evidence_and_raw_chunks_together(indexed_wiki: Indexed) -> None:
    fx, _ = indexed_wiki
    engine = engine_for(indexed_wiki)
    answer = engine.answer("what caused the 503 errors?")
    kinds = {h.kind for h in answer.hits}
    assert "source" in kinds
    assert kinds & {"section", "claim"}
    assert answer.tier == answer.hits[0].tier
    assert [h.score for h in answer.hits] == sorted((h.score for h in answer.hits), reverse=True)
    assert {h.tier for h in answer.hits if h.kind == "source"} == {3}
    # Nothing is shown twice: a claim whose quote a chosen chunk holds, or that a chosen section cites, is left out.
    shown = [" ".join(h.text.casefold().split()) for h in answer.hits if h.kind == "source"]
    cited_before: set[str] = set()
    for h in answer.hits:
        ids = {c.claim_id for c in h.citations if c.claim_id}
        if h.kind == "claim":
            assert not ids <= cited_before
        cited_before |= ids
    for h in answer.hits:
        if h.kind == "claim":
            quote = " ".join(h.citations[0].quote.casefold().split())
            assert not any(quote in t for t in shown), h.ref
    # The wiki mode keeps to the wiki; tier 3 alone to raw chunks.
    assert {h.kind for h in engine.answer("what caused the 503 errors?", mode="wiki").hits} <= {"section", "claim"}
    assert {h.kind for h in engine.answer("what caused the 503 errors?", tier=3).hits} == {"source"}


def test_a_named_entity_does_not_hide_the_chunk_that_answers(indexed_wiki: Indexed) -> None:
    fx, _ = indexed_wiki
    # The question names the Payments API, whose page does not say how long backups are kept.
    answer = engine_for(indexed_wiki).answer("how long does the payments api keep backups in cold storage?")
    assert answer.entity == "Payments API"
    assert fx.source_ids["backups"] in [h.ref for h in answer.hits if h.kind == "source"]
    assert any("35 days" in h.text for h in answer.hits)
