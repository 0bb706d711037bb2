"""DELETE /sources/{id}: admin scope only; enqueues the retraction job and dispatches it after commit."""

from __future__ import annotations

from sqlalchemy import select

from store.models import Job
from tests.api.conftest import ADMIN_KEY, INGEST_KEY


def test_retraction_needs_an_admin_key_and_enqueues_one_job(make_client, fresh_wiki):
    sent: list[list[int]] = []
    client = make_client(fresh_wiki, dispatch=sent.append)
    sid = client.get("/sources").json()["sources"][0]["id"]
    assert client.delete(f"/sources/{sid}").status_code == 401
    r = client.delete(f"/sources/{sid}", headers={"Authorization": f"Bearer {INGEST_KEY}"})
    assert r.status_code == 403
    assert r.json()["error"] == "Forbidden"
    r = client.delete(f"/sources/{sid}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["source_id"] == sid
    assert sent == [[body["job_id"]]]
    again = client.delete(f"/sources/{sid}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert again["job_id"] == body["job_id"]  # idempotent
    with fresh_wiki.session_factory() as s:
        job = s.scalars(select(Job).where(Job.kind == "retract")).one()
        assert job.key == f"retract:{sid}"
    missing = client.delete("/sources/" + "0" * 64, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert missing.status_code == 404
    assert missing.json()["error"] == "SourceNotFound"
