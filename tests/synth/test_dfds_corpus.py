"""Issue 3's corpus check: all 39 DFDS postmortems through the write path with the fake model server."""

from __future__ import annotations

from sqlalchemy import func, select

from store.models import Entity, Page, Source

TITLE_503 = "All services returning 503 in Kubernetes"


def test_all_postmortems_ingest_to_done_and_lint_clean(wiki, shared_data):
    from synth.lint_service import lint_wiki

    docs = sorted((shared_data / "ops/dfds-postmortems/docs").glob("*.md"))
    assert len(docs) == 39
    ids = wiki.ingest(*docs)
    assert len(set(ids)) == 39
    wiki.run()
    with wiki.deps.session_factory() as s:
        statuses = dict(s.execute(select(Source.status, func.count()).group_by(Source.status)).all())
        assert statuses == {"done": 39}, statuses
        same_title = [src for src in s.scalars(select(Source)) if TITLE_503.lower() in (src.origin or "").lower()]
        assert len(same_title) == 3
        pages = {p.path for p in s.scalars(select(Page).where(Page.kind == "source"))}
        assert len({f"wiki/sources/{src.slug}.md" for src in same_title} & pages) == 3
        kube = s.scalars(select(Entity).where(func.lower(Entity.name).like("kubernetes"))).all()
        assert len(kube) == 1, [(e.name, e.type) for e in kube]
        errors = [f for f in lint_wiki(s, wiki.deps.store) if f.severity == "error"]
    assert errors == []
    for src in same_title:
        assert wiki.deps.store.read(f"wiki/sources/{src.slug}.md").content is not None
