"""Every verdict of the judge flow, end to end with the fake model, decided by the documents' content
and never by the order they arrive in."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from store.models import Claim, ClaimPair, Contradiction, Entity, Source


def _docs(tmp: Path, docs: dict[str, str]) -> list[Path]:
    out = []
    for name, text in docs.items():
        p = tmp / "in" / name
        p.parent.mkdir(exist_ok=True)
        p.write_text(text)
        out.append(p)
    return out


def _one_by_one(wiki, paths: list[Path]) -> None:
    for p in paths:
        wiki.ingest(p)
        wiki.run()


def _claims_of(wiki, entity: str) -> dict[str, Claim]:
    with wiki.deps.session_factory() as s:
        e = s.scalars(select(Entity).where(Entity.name == entity)).one()
        origin = {src.id: src.origin.rsplit("/", 1)[-1] for src in s.scalars(select(Source))}
        return {origin[c.source_id]: c for c in s.scalars(select(Claim).where(Claim.entity_id == e.id))}


FOUNDING = {
    "a.md": "# Acme\n\nAcme Corp was founded in 1999 by two engineers from Ohio.\n",
    "b.md": "# Acme history\n\nThe registry says Acme Corp was founded in 1999 as a partnership.\n",
    "c.md": "# Acme profile\n\nAcme Corp was founded in 2003 according to its own website.\n",
}


@pytest.mark.parametrize("order", ["abc", "cba", "bca"])
def test_duplicates_and_a_dispute_on_a_fixed_attribute_in_any_order(wiki, tmp_path, order):
    paths = dict(zip(FOUNDING, _docs(tmp_path, FOUNDING), strict=True))
    _one_by_one(wiki, [paths[f"{k}.md"] for k in order])
    claims = _claims_of(wiki, "Acme Corp")
    assert {c.attr_key for c in claims.values()} == {"founding date"}
    # 1999 twice: one claim repeats the other; 2003 disputes both 1999 claims, whichever came first
    assert sorted(c.status for k, c in claims.items() if k != "c.md") == ["disputed", "duplicate"]
    assert claims["c.md"].status == "disputed"
    with wiki.deps.session_factory() as s:
        disputes = {frozenset((x.claim_a, x.claim_b)) for x in s.scalars(select(Contradiction))}
        verdicts = sorted(p.verdict for p in s.scalars(select(ClaimPair)))
    assert disputes == {frozenset((claims["a.md"].id, claims["c.md"].id)),
                        frozenset((claims["b.md"].id, claims["c.md"].id))}
    assert verdicts == ["disputes", "disputes", "duplicate"]


SERIES = {
    "021-multi-cluster.md": "# 21. Multi-cluster\n\nStatus: Superseded by [036](036-multi-cluster.md)\n\n"
                            "The Platform Team runs on Kubernetes 1.20 in every region.\n",
    "036-multi-cluster.md": "# 36. Multi-cluster\n\nStatus: Accepted\n\n"
                            "The Platform Team runs on Nomad 1.5 in every region.\n",
}


@pytest.mark.parametrize("newer_first", [False, True], ids=["in-order", "successor-first"])
def test_a_series_replaces_by_the_older_documents_status_line_in_either_order(wiki, tmp_path, newer_first):
    paths = _docs(tmp_path, SERIES)
    _one_by_one(wiki, paths[::-1] if newer_first else paths)
    claims = _claims_of(wiki, "Platform Team")
    assert claims["021-multi-cluster.md"].status == "superseded"
    assert claims["021-multi-cluster.md"].superseded_by == claims["036-multi-cluster.md"].id
    assert claims["036-multi-cluster.md"].status == "active"
    with wiki.deps.session_factory() as s:
        assert s.scalars(select(Contradiction)).all() == []
        status = s.scalars(select(Claim).where(Claim.attr_key == "status")).all()
        assert {c.value for c in status} == {"Superseded by [036](036-multi-cluster.md)", "Accepted"}


def test_a_document_that_only_mentions_another_is_an_independent_witness(wiki, tmp_path):
    docs = {
        "pm-2021-007.md": "# PM 2021-007\n\nThe Payments Service runs on MySQL 5.7 in production.\n",
        "review-2021.md": "# Review of pm-2021-007.md\n\nStatus: Final\n\n"
                          "The Payments Service runs on PostgreSQL 13 in production.\n",
    }
    _one_by_one(wiki, _docs(tmp_path, docs))
    claims = _claims_of(wiki, "Payments Service")
    # the review's status line is its own; it does not say that it replaces the report
    assert {c.status for c in claims.values()} == {"disputed"}
