"""`GET /contradictions` filters and totals, `POST /contradictions/{id}/resolve` behind the curate scope."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from store.models import Claim, Job
from tests.api.conftest import ADMIN_KEY, CURATE_KEY, READ_KEY
from tests.api.wiki_builder import WikiFixture

URL = "/contradictions/1/resolve"
KEEP = {"decision": "keep", "claim": "c0k8s129aaaa", "note": "the ADR supersedes the incident report"}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_resolve_needs_the_curate_scope_and_records_the_decision(
    make_client: Callable[..., TestClient], fresh_wiki: WikiFixture
) -> None:
    client = make_client(fresh_wiki)
    listed = client.get("/contradictions").json()
    assert listed["total"] == 1
    assert listed["contradictions"][0]["decision"] is None
    assert client.post(URL, json=KEEP).status_code == 401
    assert client.post(URL, json=KEEP, headers=_auth(READ_KEY)).status_code == 403
    bad = client.post(URL, json={"decision": "keep"}, headers=_auth(CURATE_KEY))
    assert bad.status_code == 422
    assert bad.json()["error"] == "InvalidDecision"
    assert client.post(URL, json={"decision": "merge"}, headers=_auth(CURATE_KEY)).status_code == 422
    assert client.post("/contradictions/99/resolve", json=KEEP, headers=_auth(CURATE_KEY)).status_code == 404

    done = client.post(URL, json=KEEP, headers=_auth(CURATE_KEY))
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["dispute"]["status"] == "resolved"
    assert (body["dispute"]["decision"], body["dispute"]["kept_claim"]) == ("keep", "c0k8s129aaaa")
    assert body["dispute"]["resolved_by"] == "reviewer"
    assert body["dispute"]["note"] == KEEP["note"]
    assert body["changed"] == {"c0k8s128bbbb": "superseded", "c0k8s129aaaa": "active"}
    with fresh_wiki.session_factory() as s:
        assert s.get(Claim, "c0k8s128bbbb").superseded_by == "c0k8s129aaaa"
        (job,) = s.scalars(select(Job).where(Job.id.in_(body["job_ids"]))).all()
        assert (job.kind, job.entity_id) == ("render", fresh_wiki.entity_ids["k8s"])

    again = client.post(URL, json=KEEP, headers=_auth(ADMIN_KEY))  # admin holds curate
    assert again.status_code == 409
    assert "already resolved by reviewer" in again.json()["detail"]
    assert client.get("/contradictions").json()["total"] == 0
    resolved = client.get("/contradictions", params={"status": "resolved", "entity": "k8s"}).json()
    assert resolved["total"] == 1
    assert resolved["contradictions"][0]["resolved_by"] == "reviewer"
    assert client.get("/contradictions", params={"status": "all", "entity": "nobody"}).json()["total"] == 0
    assert client.get("/contradictions", params={"status": "all", "decision": "dismiss"}).json()["total"] == 0
    html = client.get("/ui/contradictions").text
    assert "Resolved (one side kept) by reviewer: the ADR supersedes the incident report" in html
    assert "No open disputes." in html
