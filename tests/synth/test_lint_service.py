"""``lint_wiki`` on a real wiki (git + SQLite, fake model server): each ledger check is built, seen, fixed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.db import read_only
from store.jobs import enqueue_job
from store.models import Claim, Contradiction, Entity, Source
from synth.lint_service import lint_wiki, summarise
from tests.synth.conftest import Wiki
from wiki.lint import Finding

NOW = datetime(2025, 3, 1, tzinfo=UTC)
LEDGER_KINDS = ("stale-page", "catalog-drift", "dispute-stale")

DOCS = {
    "upgrade.md": "# Cluster upgrade\n\nKubernetes runs version 1.29 in the production cluster.\n"
    "Kubernetes nodes are replaced every fourteen days by Karpenter.\n"
    "Kafka keeps consumer offsets for seven days.\n",
    "incident.md": "# Broker outage\n\nKafka lost two brokers during the Kubernetes node rotation.\n"
    "Kafka clients retried for twenty minutes before the brokers returned.\n",
}


@pytest.fixture
def built(wiki: Wiki, tmp_path: Path) -> Wiki:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    wiki.ingest(*sorted(folder.iterdir()))
    wiki.run()
    return wiki


def lint(w: Wiki, **kw: object) -> list[Finding]:
    engine = w.deps.session_factory.kw["bind"]
    with Session(read_only(engine)) as session:
        findings = lint_wiki(session, w.deps.store, now=NOW, **kw)  # type: ignore[arg-type]
        assert not session.new  # the lint only reads
        assert not session.dirty
        assert not session.deleted
    return findings


def of(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def busiest_entity(w: Wiki) -> tuple[int, str, list[str]]:
    """The entity with the most active claims: (id, page path, its active claim ids)."""
    with w.deps.session_factory() as s:
        entity_id = s.scalars(
            select(Claim.entity_id).where(Claim.status == "active").group_by(Claim.entity_id)
            .order_by(func.count().desc(), Claim.entity_id)
        ).first()
        entity = s.get(Entity, entity_id)
        assert entity is not None
        ids = sorted(s.scalars(select(Claim.id).where(Claim.entity_id == entity_id, Claim.status == "active")))
        assert len(ids) >= 2, "the documents should give one entity two claims"
        return entity.id, entity.page_path, ids


def test_a_freshly_built_wiki_has_no_errors_and_nothing_stale(built: Wiki) -> None:
    findings = lint(built)
    assert [f for f in findings if f.severity == "error"] == []
    assert [f for f in findings if f.kind in LEDGER_KINDS] == []
    report = summarise(findings)
    assert report["errors"] == 0
    assert report["warnings"] == len(findings)


def test_an_old_open_dispute_is_reported_until_resolved(built: Wiki) -> None:
    entity_id, path, (a, b, *_) = busiest_entity(built)
    with built.deps.session_factory() as s, s.begin():
        s.add(Contradiction(entity_id=entity_id, claim_a=a, claim_b=b, reason="test", status="open",
                            created_at=NOW - timedelta(days=45)))
    assert of(lint(built), "dispute-stale") == [
        Finding("warning", "dispute-stale", path,
                f"[^{min(a, b)}] vs [^{max(a, b)}] open for 45 days (since 2025-01-15), more than 30"),
    ]  # fmt: skip
    assert of(lint(built, dispute_days=60), "dispute-stale") == []
    with built.deps.session_factory() as s, s.begin():
        x = s.scalars(select(Contradiction)).one()
        x.status = "resolved"
    assert of(lint(built), "dispute-stale") == []


def test_a_ledger_change_without_a_render_is_an_error_until_rendered(built: Wiki) -> None:
    entity_id, path, (gone, *_) = busiest_entity(built)
    with built.deps.session_factory() as s, s.begin():  # the ledger moves and nobody asks for a render
        s.get(Claim, gone).status = "retracted"  # type: ignore[union-attr]
        s.get(Entity, entity_id).revision += 1  # type: ignore[union-attr]
    [stale] = of(lint(built), "stale-page")
    assert (stale.severity, stale.path) == ("error", path)
    assert f"1 claim(s) the ledger no longer shows here ([^{gone}])" in stale.detail
    assert stale.detail.endswith("; no render queued")
    with built.deps.session_factory() as s, s.begin():
        enqueue_job(s, "render", f"render:{entity_id}", {"entity_id": entity_id}, entity_id=entity_id,
                    requeue_finished=True)
    [queued] = of(lint(built), "stale-page")
    assert queued.severity == "warning"
    assert queued.detail.endswith("; render queued")
    built.run()
    findings = lint(built)
    assert of(findings, "stale-page") == []
    assert f"[^{gone}]" not in (built.deps.store.read(path).content or b"").decode()


def test_a_page_a_person_removed_is_stale_until_rendered_again(built: Wiki) -> None:
    entity_id, path, _ = busiest_entity(built)
    store = built.deps.store
    store.write({path: None}, {path: store.read(path).version}, "A person removes a page")
    [stale] = of(lint(built), "stale-page")
    assert stale.severity == "warning"  # not the last recorded render: a person's commit (or a render in flight)
    assert stale.detail.startswith("missing at HEAD; the ledger has ")
    with built.deps.session_factory() as s, s.begin():
        s.get(Entity, entity_id).revision += 1  # type: ignore[union-attr]
        enqueue_job(s, "render", f"render:{entity_id}", {"entity_id": entity_id}, entity_id=entity_id,
                    requeue_finished=True)
    built.run()
    assert of(lint(built), "stale-page") == []
    assert store.read(path).content is not None


def test_the_catalog_drifts_when_the_ledger_moves_and_catches_up_after_the_catalog_job(built: Wiki) -> None:
    with built.deps.session_factory() as s, s.begin():
        src = s.scalars(select(Source).order_by(Source.slug)).first()
        assert src is not None
        assert src.status == "done"
        src.status, src.error = "failed", "a test marks it failed"
        title = src.title
    drift = of(lint(built), "catalog-drift")
    assert {f.path for f in drift} == {"wiki/index.md", "wiki/log.md"}
    assert all(f.severity == "warning" for f in drift)
    log_drift = next(f for f in drift if f.path == "wiki/log.md")
    assert "2 line(s) missing and 1 out of date against the ledger, e.g. '## [" in log_drift.detail
    assert f"] failed | {title}'" in log_drift.detail
    with built.deps.session_factory() as s, s.begin():
        enqueue_job(s, "catalog", "catalog", {}, requeue_finished=True)
    assert all(f.detail.endswith("; catalog job queued") for f in of(lint(built), "catalog-drift"))
    built.run()
    assert of(lint(built), "catalog-drift") == []


def test_a_persons_uncommitted_edit_is_kept_and_reported(built: Wiki) -> None:
    store = built.deps.store
    _, path, _ = busiest_entity(built)
    mine = b"# My own notes, not committed yet\n"
    (store.root / path).write_bytes(mine)
    assert of(lint(built), "worktree-held") == []  # the tip has not touched it yet
    page = store.read(path).content
    assert page is not None
    other = "wiki/people/someone-new.md"
    store.write({path: page + b"\nA machine line.\n", other: b"# Someone new\n"}, {}, "a machine write")
    assert (store.root / path).read_bytes() == mine
    assert (store.root / other).read_bytes() == b"# Someone new\n"  # the edit blocks no other file
    held = of(lint(built), "worktree-held")
    assert [(f.severity, f.path) for f in held] == [("warning", path)]
    assert "not committed" in held[0].detail
