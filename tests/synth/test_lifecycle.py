"""Source lifecycle with the fake model server: retraction, supersession, human edits, no-op re-ingest."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from store.models import Claim, Contradiction, Entity, Job, Source
from synth.lifecycle import request_retraction


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / "in" / name
    p.parent.mkdir(exist_ok=True)
    p.write_text(text)
    return p


def _pages(wiki) -> dict[str, str]:
    store = wiki.deps.store
    paths = [p for p in store.list("wiki/") if p.endswith(".md")]
    return {p: r.content.decode() for p, r in store.read_many(paths).items() if r.content is not None}


def _retract(wiki, source_id: str) -> int:
    with wiki.deps.session_factory() as s, s.begin():
        job_id = request_retraction(s, source_id).id
    wiki.run()
    return job_id


def test_retracting_a_source_removes_only_what_it_alone_supported(wiki, tmp_path):
    shared = "The Payments Service stores ledgers in PostgreSQL clusters."
    a = _write(tmp_path, "a.md", f"# Payments notes\n\n{shared}\nThe Payments Service is owned by Team Atlas.\n")
    b = _write(tmp_path, "b.md", f"# Payments review\n\n{shared}\nThe Payments Service deploys every Tuesday.\n")
    (a_id,) = wiki.ingest(a)
    wiki.run()
    time.sleep(0.01)
    (b_id,) = wiki.ingest(b)
    wiki.run()
    before = _pages(wiki)
    assert any("owned by Team Atlas" in t for t in before.values())
    head = wiki.deps.store.head()

    job_id = _retract(wiki, a_id)

    after = _pages(wiki)
    assert not any("owned by Team Atlas" in t for p, t in after.items() if not p.endswith("log.md"))
    assert any("deploys every Tuesday" in t for t in after.values())
    assert any("stores ledgers in PostgreSQL" in t for p, t in after.items() if "/sources/" not in p)
    new_commits = wiki.deps.store.log(since=head)
    assert len(new_commits) == 1, [c.message for c in new_commits]
    assert new_commits[0].trailers["Lore-Job"] == [str(job_id)]
    assert new_commits[0].trailers["Lore-Source"] == [a_id]
    assert "retracted" in after["wiki/log.md"]
    with wiki.deps.session_factory() as s:
        assert s.get(Source, a_id).status == "retracted"
        assert {c.status for c in s.scalars(select(Claim).where(Claim.source_id == a_id))} == {"retracted"}
        b_claims = s.scalars(select(Claim).where(Claim.source_id == b_id)).all()
        assert b_claims
        assert all(c.status == "active" for c in b_claims)
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=wiki.deps.store.root, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr


@pytest.mark.parametrize("newer_first", [False, True], ids=["older-first", "newer-first"])
def test_retracting_the_newer_source_reactivates_the_superseded_claim(wiki, tmp_path, newer_first):
    a = _write(tmp_path, "a.md", "# Billing\n\nAs of 2022, the Billing Service runs on MySQL 5.7 in production.\n")
    b = _write(tmp_path, "b.md", "# Billing\n\nAs of 2024, the Billing Service runs on PostgreSQL 15 in production.\n")
    for doc in (b, a) if newer_first else (a, b):
        wiki.ingest(doc)
        wiki.run()
    with wiki.deps.session_factory() as s:
        a_id = s.scalar(select(Source.id).where(Source.origin.endswith("a.md")))
        b_id = s.scalar(select(Source.id).where(Source.origin.endswith("b.md")))
        entity = s.scalars(select(Entity).where(Entity.name == "Billing Service")).one()
        old = s.scalars(select(Claim).where(Claim.source_id == a_id, Claim.entity_id == entity.id)).all()
        assert old
        # the dates decide, whichever arrived first
        assert all(c.status == "superseded" for c in old), [(c.text, c.status) for c in old]
        assert {c.attr_key for c in old} == {"platform"}
    page = wiki.deps.store.read(entity.page_path).content.decode()
    assert "MySQL 5.7" in page.split("lore:history")[1]  # shown under History, not as a dispute
    assert "wiki/contradictions.md" not in [p for p, t in _pages(wiki).items() if "MySQL" in t]

    _retract(wiki, b_id)

    with wiki.deps.session_factory() as s:
        old = s.scalars(select(Claim).where(Claim.source_id == a_id, Claim.entity_id == entity.id)).all()
        assert old
        assert all(c.status == "active" and c.superseded_by is None for c in old)
    page = wiki.deps.store.read(entity.page_path).content.decode()
    assert "PostgreSQL 15" not in page
    assert "MySQL 5.7" in page.split("lore:facts")[1]


def test_a_persons_edits_survive_three_machine_renders(wiki, tmp_path):
    doc = _write(tmp_path, "a.md", "# Queue\n\nThe Kafka Cluster keeps seven days of events.\n")
    wiki.ingest(doc)
    wiki.run()
    with wiki.deps.session_factory() as s:
        entity = s.scalars(select(Entity).where(Entity.name == "Kafka")).first() or s.scalars(select(Entity)).first()
        path = entity.page_path
    repo = wiki.deps.store.root
    file = repo / path
    text = file.read_text()
    human = "\nA note from the on-call team: page the data team before resizing.\n"
    facts_line = next(line for line in text.splitlines() if line.startswith("- ") and "[^" in line)
    edited_line = facts_line.replace("- ", "- (checked by ops) ", 1)
    file.write_text(text.replace(facts_line, edited_line) + human)
    subprocess.run(["git", "commit", "-qam", "ops: note"], cwd=repo, check=True,
                   env={"GIT_AUTHOR_NAME": "Op", "GIT_AUTHOR_EMAIL": "op@x", "GIT_COMMITTER_NAME": "Op",
                        "GIT_COMMITTER_EMAIL": "op@x", "PATH": "/usr/bin:/bin"})
    for i in range(3):
        more = _write(tmp_path, f"more{i}.md", f"# Queue {i}\n\nThe Kafka Cluster gained broker number {i + 4}.\n")
        wiki.ingest(more)
        wiki.run()
        page = wiki.deps.store.read(path).content.decode()
        assert human.strip() in page
        assert "(checked by ops)" in page
    with wiki.deps.session_factory() as s:
        assert s.scalar(select(Job).where(Job.state == "dead")) is None


def test_reingesting_identical_bytes_is_a_no_op(wiki, tmp_path):
    doc = _write(tmp_path, "a.md", "# Queue\n\nThe Kafka Cluster keeps seven days of events.\n")
    wiki.ingest(doc)
    wiki.run()
    head = wiki.deps.store.head()
    copy = _write(tmp_path, "copy.md", doc.read_text())
    wiki.ingest(doc, copy)
    wiki.run()
    assert wiki.deps.store.head() == head


def test_a_new_version_replaces_what_the_old_one_said(wiki, tmp_path):
    doc = _write(tmp_path, "runbook.md", "# Queue\n\nThe Kafka Cluster keeps seven days of events.\n"
                                         "The Kafka Cluster runs three brokers in each zone.\n")
    (v1,) = wiki.ingest(doc)
    wiki.run()
    doc.write_text("# Queue\n\nThe Kafka Cluster keeps seven days of events.\n"
                   "The Kafka Cluster runs five brokers in each zone.\n")
    (v2,) = wiki.ingest(doc)
    wiki.run()
    assert v1 != v2
    with wiki.deps.session_factory() as s:
        assert s.get(Source, v1).status == "replaced"
        assert s.get(Source, v2).status == "done"
        assert s.get(Source, v2).previous_id == v1
    text = "\n".join(_pages(wiki).values())
    assert "five brokers" in text
    assert "three brokers" not in text.replace("wiki/log.md", "")


@pytest.mark.parametrize("reverse", [False, True], ids=["a-first", "b-first"])
def test_sources_arriving_together_are_judged_against_each_other(wiki, tmp_path, reverse):
    a = _write(tmp_path, "a.md", "# Billing\n\nThe Billing Service runs on MySQL 5.7 in production today.\n")
    b = _write(tmp_path, "b.md", "# Billing\n\nThe Billing Service runs on PostgreSQL 15 in production today.\n")
    wiki.ingest(*((b, a) if reverse else (a, b)))
    wiki.run()  # both extracted before the entity's first render
    with wiki.deps.session_factory() as s:
        entity = s.scalars(select(Entity).where(Entity.name == "Billing Service")).one()
        claims = s.scalars(select(Claim).where(Claim.entity_id == entity.id)).all()
        assert len({c.source_id for c in claims}) == 2
        # no dates and no status line: arrival order decides nothing, the two sources disagree
        assert {c.status for c in claims} == {"disputed"}, [(c.text, c.status) for c in claims]
        (x,) = s.scalars(select(Contradiction).where(Contradiction.entity_id == entity.id)).all()
        assert x.status == "open"
    assert "Billing Service" in _pages(wiki)["wiki/contradictions.md"]
