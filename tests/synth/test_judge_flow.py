"""The judge's outcomes on a real SQLite ledger, and the succession guard for documents that link each other."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import Claim, Contradiction, Entity, Source
from synth.judge_flow import apply_outcomes, linked, names_source, source_names
from synth.prompts.judge import JudgeOutcome

OLD = "# 21. Multi-cluster\n\n## Status\n\nSuperseded by [036. Multi-cluster](036-multi-cluster.md)\n\nOne cluster.\n"
NEW = "# 36. Multi-cluster\n\n## Status\n\nAccepted\n\nWe adopt a multi-cluster approach.\n"
OTHER = "# Platform notes\n\nWe adopt a single cluster for everything.\n"


@pytest.fixture
def session(tmp_path):
    url = f"sqlite:///{tmp_path / 'lore.db'}"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    with factory() as s, s.begin():
        yield s


def _ledger(session, old_text: str, new_text: str, new_origin: str) -> tuple[Claim, Claim]:
    session.add_all([
        Source(id="a" * 64, slug="adr-021", origin="adrs/021-Multi-cluster.md", origin_key="021", text=old_text),
        Source(id="b" * 64, slug="adr-036", origin=new_origin, origin_key="036", text=new_text),
        Entity(id=1, name="Multi-cluster", norm_name="multi-cluster", type="concepts", slug="multi-cluster"),
    ])
    session.flush()
    old = Claim(id="cold", entity_id=1, source_id="a" * 64, key="k1", text="Apps run on one cluster.",
                quote="One cluster", judged=True)
    new = Claim(id="cnew", entity_id=1, source_id="b" * 64, key="k2", text="Apps run on several clusters.",
                quote="multi-cluster approach")
    session.add_all([old, new])
    session.flush()
    return old, new


def test_a_dispute_between_linked_documents_is_applied_as_supersession(session):
    old, new = _ledger(session, OLD, NEW, "adrs/036-multi-cluster.md")
    verdict = JudgeOutcome(claim="cnew", outcome="disputes", other="cold", reason="one vs several clusters")
    opened = apply_outcomes(session, 1, ["cnew"], [verdict])
    assert opened == 0
    assert (old.status, old.superseded_by) == ("superseded", "cnew")
    assert new.status == "active"
    assert new.judged
    assert new.judgement.startswith("supersedes: one source links to the other")
    assert "one vs several clusters" in new.judgement
    assert session.scalars(select(Contradiction)).all() == []


def test_independent_sources_that_disagree_stay_a_dispute(session):
    old, new = _ledger(session, OLD.replace("036-multi-cluster.md", "elsewhere.md"), OTHER, "notes/platform.md")
    verdict = JudgeOutcome(claim="cnew", outcome="disputes", other="cold", reason="one vs several clusters")
    assert apply_outcomes(session, 1, ["cnew"], [verdict]) == 1
    assert (old.status, new.status) == ("disputed", "disputed")
    (row,) = session.scalars(select(Contradiction)).all()
    assert {row.claim_a, row.claim_b} == {"cold", "cnew"}
    assert row.reason == "one vs several clusters"


def test_source_names_are_distinctive_file_names():
    assert source_names("adrs/036-multi-cluster.md") == {"036-multi-cluster.md", "036-multi-cluster"}
    assert source_names("unnamed") == set()
    assert source_names("notes") == set()  # a plain word would "link" every text that uses it
    assert source_names("docs/README.md") == set()
    assert source_names("adr-7.md") == set()  # too short to be distinctive
    assert names_source("see [ADR 36](036-Multi-Cluster.md)", "x/036-multi-cluster.md")
    assert names_source("see [[036-multi-cluster]]", "036-multi-cluster.md")
    assert names_source("see [PM](PM2020-007%20-%20Unhealthy%20nodes.md)", "PM2020-007 - Unhealthy nodes.md")
    assert not names_source("see 1036-multi-cluster.md", "036-multi-cluster.md")
    assert not names_source("see 036-multi-cluster-v2.md", "036-multi-cluster.md")
    assert not names_source(None, "036-multi-cluster.md")
    a = Source(id="a", slug="a", origin="021-Multi-cluster.md", origin_key="a", text=OLD)
    b = Source(id="b", slug="b", origin="036-multi-cluster.md", origin_key="b", text=NEW)
    assert linked(a, b)
    assert linked(b, a)  # either direction is enough
    assert not linked(a, a)


def test_an_answer_that_stays_invalid_leaves_the_batch_as_it_is(tmp_path, fake_llm):
    from synth.judge_flow import JudgeBatch, ask
    from synth.prompts.judge import ClaimRef
    from tests.synth.conftest import make_wiki

    deps = make_wiki(tmp_path, fake_llm).deps
    batch = JudgeBatch("Kafka", [ClaimRef("n1", "Kafka runs on 5 brokers.")],
                       [ClaimRef("e1", "Kafka runs on 3 brokers.")])
    fake_llm.script("ignore_schema", "ignore_schema")  # the answer and its repair both miss the schema
    assert ask(deps, batch, job_id=1) == []
    outcomes = ask(deps, batch, job_id=1)  # a valid answer is used as it is
    assert [(o.claim, o.other) for o in outcomes] == [("n1", "e1")]
    assert outcomes[0].outcome in ("supersedes", "disputes")
