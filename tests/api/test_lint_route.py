"""GET /lint: the same report as ``lore lint --json`` (``summarise(lint_wiki(...))``), behind the read scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from store.models import Contradiction
from synth.lint_service import lint_wiki, summarise
from tests.api.conftest import READ_KEY

K8S = "wiki/systems/kubernetes.md"


def kinds(body: dict, severity: str) -> dict[str, int]:
    return body["by_kind"][severity]


def test_lint_returns_the_cli_report(client, wiki_fx):
    r = client.get("/lint")
    assert r.status_code == 200, r.text
    body = r.json()
    with wiki_fx.session_factory() as session:
        expected = summarise(lint_wiki(session, wiki_fx.store))
    assert body == expected
    assert body["errors"] + body["warnings"] == len(body["findings"]) > 0
    order = [(f["severity"], f["kind"], f["path"], f["detail"]) for f in body["findings"]]
    assert order == sorted(order)


def test_query_parameters_reach_the_checks(client):
    assert "stub" in kinds(client.get("/lint", params={"min_claims": 100}).json(), "warning")
    assert "stub" not in kinds(client.get("/lint", params={"min_claims": 0}).json(), "warning")
    assert client.get("/lint", params={"min_claims": -1}).status_code == 422
    assert client.get("/lint", params={"dispute_days": "soon"}).status_code == 422


def test_an_old_dispute_shows_up_by_its_age(make_client, fresh_wiki):
    client = make_client(fresh_wiki)
    assert "dispute-stale" not in kinds(client.get("/lint").json(), "warning")
    with fresh_wiki.session_factory() as s, s.begin():
        dispute = s.scalars(select(Contradiction).where(Contradiction.status == "open")).first()
        assert dispute is not None
        dispute.created_at = datetime.now(UTC) - timedelta(days=40)
    body = client.get("/lint").json()
    [stale] = [f for f in body["findings"] if f["kind"] == "dispute-stale"]
    assert stale["path"] == K8S
    assert stale["severity"] == "warning"
    assert "open for 40 days" in stale["detail"]
    assert "dispute-stale" not in kinds(client.get("/lint", params={"dispute_days": 45}).json(), "warning")


def test_lint_needs_a_read_key_when_reads_are_closed(make_client):
    closed = make_client(open_reads=False)
    assert closed.get("/lint").status_code == 401
    assert closed.get("/lint", headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 200
