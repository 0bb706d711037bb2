"""The write path keeps the search index current: pages and raw source text in, retracted ones out."""

from __future__ import annotations

import pytest

from search.embedding import SentenceTransformerEmbedder
from search.index import SearchIndex
from synth.lifecycle import request_retraction
from tests.synth.conftest import make_wiki


@pytest.fixture(scope="module")
def embedder():
    return SentenceTransformerEmbedder(None, threads=1)


def test_ingest_indexes_pages_and_source_text_and_retraction_removes_them(tmp_path, fake_llm, embedder):
    wiki = make_wiki(tmp_path, fake_llm)
    wiki.deps.search = SearchIndex(wiki.deps.session_factory.kw["bind"], embedder)
    doc = tmp_path / "pager.md"
    doc.write_text("# Pager rota\n\nThe Falcon Team rotates the pager every Wednesday at noon.\n"
                   "Escalations go to the Falcon Team lead after fifteen minutes.\n")
    (sid,) = wiki.ingest(doc)
    wiki.run()
    sources = wiki.deps.search.search("who rotates the pager", k=5, kinds=("source",))
    assert any(h.ref == sid for h in sources)
    sections = wiki.deps.search.search("Falcon Team pager", k=5, kinds=("section", "claim"))
    assert sections

    with wiki.deps.session_factory() as s, s.begin():
        request_retraction(s, sid)
    wiki.run()
    assert not any(h.ref == sid for h in wiki.deps.search.search("who rotates the pager", k=5, kinds=("source",)))
    assert wiki.deps.search.search("Falcon Team pager", k=5, kinds=("section", "claim")) == []
