"""Dispute review with the fake model server: keep one side, both valid, dismiss; what the page, the
catalog, the commit and the lint show; a later disagreement opens a new dispute."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.db import read_only
from store.models import Claim, Contradiction, Entity, utcnow
from synth.disputes import DisputeClosed, DisputeNotFound, InvalidDecision, resolve_dispute
from synth.lint_service import lint_wiki

A = "# Billing\n\nThe Billing Service runs on MySQL 5.7 in production today.\n"
B = "# Billing\n\nThe Billing Service runs on PostgreSQL 15 in production today.\n"
C = "# Billing\n\nThe Billing Service runs on Oracle 19c in production today.\n"


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / "in" / name
    p.parent.mkdir(exist_ok=True)
    p.write_text(text)
    return p


def _page(wiki, path: str) -> str:
    found = wiki.deps.store.read(path).content
    assert found is not None, path
    return found.decode()


def _disputed(wiki, tmp_path) -> tuple[int, str, str, str]:
    """Two sources that disagree; returns (dispute id, claim a, claim b, entity page path)."""
    wiki.ingest(_write(tmp_path, "a.md", A), _write(tmp_path, "b.md", B))
    wiki.run()
    with wiki.deps.session_factory() as s:
        entity = s.scalars(select(Entity).where(Entity.name == "Billing Service")).one()
        (x,) = s.scalars(select(Contradiction).where(Contradiction.entity_id == entity.id)).all()
        assert x.status == "open"
        return x.id, x.claim_a, x.claim_b, entity.page_path


def _resolve(wiki, dispute_id: int, decision: str, **kw) -> dict[str, str]:
    with wiki.deps.session_factory() as s, s.begin():
        done = resolve_dispute(s, dispute_id, decision, reviewer=kw.pop("reviewer", "alice"), **kw)
    wiki.run()
    return done.changed


def _texts(wiki, *ids: str) -> dict[str, tuple[str, str]]:
    with wiki.deps.session_factory() as s:
        return {c.id: (c.status, c.text) for c in s.scalars(select(Claim).where(Claim.id.in_(ids)))}


def test_keeping_one_side_moves_the_other_to_history_and_says_who_and_why(wiki, tmp_path):
    dispute, a, b, path = _disputed(wiki, tmp_path)
    assert "[!warning] Sources disagree" in _page(wiki, path)
    changed = _resolve(wiki, dispute, "keep", claim=b, note="the 2024 migration finished")
    assert changed == {a: "superseded", b: "active"}
    claims = _texts(wiki, a, b)
    page = _page(wiki, path)
    assert "[!warning]" not in page
    assert "[!note] Dispute resolved (one side kept) by alice on" in page
    assert "the 2024 migration finished" in page
    assert "*(kept)*" in page
    assert f"- *Superseded:* {claims[a][1]}" in page  # the other side is history, still cited
    catalog = _page(wiki, "wiki/contradictions.md")
    assert "0 open disputes" in catalog
    assert "## Resolved" in catalog
    assert "by alice" in catalog
    log = subprocess.run(["git", "-C", str(wiki.deps.store.root), "log", "--format=%B", "-n", "20"],
                         capture_output=True, text=True, check=True).stdout
    assert f"Lore-Review: dispute {dispute} keep by alice" in log
    with wiki.deps.session_factory() as s:
        row = s.get(Contradiction, dispute)
        assert (row.status, row.decision, row.kept_claim, row.resolved_by) == ("resolved", "keep", b, "alice")
        assert row.review_commit


@pytest.mark.parametrize("decision", ["both_valid", "dismiss"])
def test_both_valid_or_dismissed_leaves_both_active(wiki, tmp_path, decision):
    dispute, a, b, path = _disputed(wiki, tmp_path)
    assert _resolve(wiki, dispute, decision, note="different regions") == {a: "active", b: "active"}
    page = _page(wiki, path)
    words = {"both_valid": "both sides hold", "dismiss": "not a real disagreement"}[decision]
    assert f"Dispute resolved ({words}) by alice" in page
    assert "## Facts" in page
    assert all(t in page for _, t in _texts(wiki, a, b).values())


def test_a_resolved_dispute_is_not_stale_and_a_new_disagreement_opens_a_new_one(wiki, tmp_path):
    dispute, a, b, _ = _disputed(wiki, tmp_path)
    with wiki.deps.session_factory() as s, s.begin():
        s.get(Contradiction, dispute).created_at = utcnow() - timedelta(days=90)

    def stale() -> list[str]:
        with Session(read_only(wiki.deps.session_factory.kw["bind"])) as session:
            return [f.kind for f in lint_wiki(session, wiki.deps.store, dispute_days=30) if f.kind == "dispute-stale"]

    assert stale()
    _resolve(wiki, dispute, "keep", claim=a)
    assert not stale()
    wiki.ingest(_write(tmp_path, "c.md", C))
    wiki.run()
    with wiki.deps.session_factory() as s:
        rows = s.scalars(select(Contradiction).order_by(Contradiction.id)).all()
        assert [r.status for r in rows][0] == "resolved"
        assert any(r.status == "open" and a in (r.claim_a, r.claim_b) for r in rows[1:]), [
            (r.claim_a, r.claim_b, r.status) for r in rows
        ]


def test_bad_decisions_are_refused_and_change_nothing(wiki, tmp_path):
    dispute, a, b, _ = _disputed(wiki, tmp_path)
    with wiki.deps.session_factory() as s, s.begin():
        with pytest.raises(InvalidDecision, match="needs the claim to keep"):
            resolve_dispute(s, dispute, "keep", reviewer="bob")
        with pytest.raises(InvalidDecision, match="needs the claim to keep"):
            resolve_dispute(s, dispute, "keep", reviewer="bob", claim="c0notmine000")
        with pytest.raises(InvalidDecision, match="only given with 'keep'"):
            resolve_dispute(s, dispute, "dismiss", reviewer="bob", claim=a)
        with pytest.raises(InvalidDecision, match="unknown decision"):
            resolve_dispute(s, dispute, "merge", reviewer="bob")
        with pytest.raises(DisputeNotFound):
            resolve_dispute(s, 99_999, "dismiss", reviewer="bob")
    assert {st for st, _ in _texts(wiki, a, b).values()} == {"disputed"}
    _resolve(wiki, dispute, "dismiss")
    with wiki.deps.session_factory() as s, s.begin(), pytest.raises(DisputeClosed, match="already resolved by alice"):
        resolve_dispute(s, dispute, "dismiss", reviewer="bob")


def test_the_disputes_commands(wiki, tmp_path):
    import json
    import os
    import sys

    dispute, a, b, path = _disputed(wiki, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
    env.update(LORE_PATHS__DATA_DIR=str(tmp_path), COLUMNS="200",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))

    def lore(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lore", "disputes", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    listed = lore("list", "--json")
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert body["total"] == 1
    assert body["contradictions"][0]["id"] == dispute
    shown = lore("show", str(dispute))
    assert shown.returncode == 0, shown.stderr
    assert a in shown.stdout
    assert b in shown.stdout
    bad = lore("resolve", str(dispute), "--decision", "keep")
    assert bad.returncode == 1
    assert "needs the claim to keep" in bad.stderr
    done = lore("resolve", str(dispute), "--decision", "keep", "--claim", a, "--note", "older is right",
                "--by", "carol", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["changed"] == {a: "active", b: "superseded"}
    wiki.run()  # the workers' part: the render the command enqueued
    assert "Dispute resolved (one side kept) by carol" in _page(wiki, path)
    assert json.loads(lore("list", "--json").stdout)["total"] == 0
    assert lore("show", "999").returncode == 1
