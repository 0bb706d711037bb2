"""The write path end to end against the fake model server: sources -> claims -> pages -> catalog."""

from __future__ import annotations

from sqlalchemy import func, select

from store.models import Claim, Entity, Source


def test_two_postmortems_become_cited_pages(wiki, shared_data):
    docs = sorted((shared_data / "ops/dfds-postmortems/docs").glob("*.md"))[:2]
    ids = wiki.ingest(*docs)
    outcomes = wiki.run()
    assert outcomes.get("dead", 0) == 0, outcomes
    with wiki.deps.session_factory() as s:
        statuses = {sid: s.get(Source, sid).status for sid in ids}
        assert set(statuses.values()) == {"done"}, statuses
        n_claims = s.scalar(select(func.count()).select_from(Claim))
        assert n_claims > 0
        entity = s.scalars(select(Entity)).first()
        path = entity.page_path
    page = wiki.deps.store.read(path).content.decode()
    assert "[^" in page
    index = wiki.deps.store.read("wiki/index.md").content.decode()
    assert entity.name in index
    log = wiki.deps.store.log()
    assert any("Lore-Source" in c.trailers for c in log)
    assert any("Assisted-by" in c.trailers for c in log)


def test_reingesting_identical_bytes_makes_no_commit(wiki, shared_data):
    doc = sorted((shared_data / "ops/dfds-postmortems/docs").glob("*.md"))[0]
    wiki.ingest(doc)
    wiki.run()
    head = wiki.deps.store.head()
    wiki.ingest(doc)
    wiki.run()
    assert wiki.deps.store.head() == head


def test_lint_passes_on_a_synthesized_wiki(wiki, shared_data):
    from synth.lint_service import lint_wiki

    docs = sorted((shared_data / "ops/dfds-postmortems/docs").glob("*.md"))[:4]
    wiki.ingest(*docs)
    wiki.run()
    with wiki.deps.session_factory() as s:
        findings = lint_wiki(s, wiki.deps.store)
    errors = [f for f in findings if f.severity == "error"]
    assert errors == []


def test_a_source_that_fails_is_listed_in_the_log_with_its_reason(tmp_path, shared_data):
    from bench.fake_llm import FakeLLM
    from synth.lint_service import lint_wiki
    from tests.synth.conftest import make_wiki

    doc = sorted((shared_data / "ops/dfds-postmortems/docs").glob("*.md"))[0]
    with FakeLLM(context_tokens=1500) as fake:  # the server refuses the prompt as too long: permanent
        wiki = make_wiki(tmp_path, fake)
        (sid,) = wiki.ingest(doc)
        wiki.run()
    with wiki.deps.session_factory() as s:
        source = s.get(Source, sid)
        assert source.status == "failed"
        assert source.error
        findings = lint_wiki(s, wiki.deps.store)
    log_md = wiki.deps.store.read("wiki/log.md").content.decode()
    assert "failed" in log_md
    assert (source.title or source.origin) in log_md
    assert not [f for f in findings if f.kind == "catalog-drift"], findings
