"""The REST routes against a small real wiki (git repository + SQLite ledger)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.wiki_builder import WikiFixture

K8S = "wiki/systems/kubernetes.md"
PAYMENTS = "wiki/services/payments-api.md"


def test_list_pages_and_filter_by_type(client: TestClient) -> None:
    body = client.get("/pages").json()
    paths = {p["path"] for p in body["pages"]}
    assert {K8S, PAYMENTS, "wiki/teams/core-team.md", "wiki/sources/platform-adr-7.md"} <= paths
    assert body["total"] == len(body["pages"])
    titles = {p["path"]: p["title"] for p in body["pages"]}
    assert titles[K8S] == "Kubernetes"
    systems = client.get("/pages", params={"type": "systems"}).json()["pages"]
    assert [p["path"] for p in systems] == [K8S]
    sources = client.get("/pages", params={"type": "sources"}).json()["pages"]
    assert sources
    assert all(p["path"].startswith("wiki/sources/") for p in sources)
    paged = client.get("/pages", params={"limit": 2, "offset": 1}).json()
    assert [p["path"] for p in paged["pages"]] == sorted(paths)[1:3]


def test_page_as_json_has_claims_and_citations(client: TestClient, wiki_fx: WikiFixture) -> None:
    r = client.get(f"/pages/{PAYMENTS}")
    assert r.status_code == 200
    page = r.json()
    assert page["title"] == "Payments API"
    assert page["type"] == "services"
    assert page["version"] == wiki_fx.store.read(PAYMENTS).version
    assert "[[Core team]]" in page["markdown"]
    assert not page["markdown"].startswith("---")
    assert page["front_matter"]["title"] == "Payments API"
    assert {c["id"] for c in page["claims"]} == {"c0payown1111", "c0pay503222", "c0paydeploy3"}
    cite = page["citations"]["c0pay503222"]
    assert cite["source_title"] == "Incident 2024-03 postmortem"
    assert cite["source_page"] == "wiki/sources/incident-2024-03.md"
    assert cite["quote"].startswith("The Payments API returned 503 errors")
    assert r.headers["cache-control"] == "no-cache"
    tags = {fmt: client.get(f"/pages/{PAYMENTS}?format={fmt}").headers["etag"] for fmt in ("md", "html", "json")}
    assert tags["json"] == r.headers["etag"]
    assert len(set(tags.values())) == 3, "each representation has its own strong ETag"
    assert all(t.startswith('"') and t.endswith('"') for t in tags.values())


def test_page_formats_by_param_and_accept(client: TestClient, wiki_fx: WikiFixture) -> None:
    md = client.get(f"/pages/{K8S}", params={"format": "md"})
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text == wiki_fx.store.read(K8S).content.decode()  # type: ignore[union-attr]
    html = client.get(f"/pages/{K8S}", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html")
    assert 'href="/pages/wiki/services/payments-api.md"' in html.text
    assert "Conflicting sources" in html.text
    by_accept = client.get(f"/pages/{K8S}", headers={"Accept": "text/markdown"})
    assert by_accept.text == md.text
    assert client.get(f"/pages/{K8S}").headers["content-type"].startswith("application/json")


def test_missing_page_and_bad_paths_are_404_with_error_body(client: TestClient) -> None:
    for path in ("wiki/systems/nope.md", "raw/platform-adr-7.md", "wiki/../etc/passwd.md", "wiki/systems"):
        r = client.get(f"/pages/{path}")
        assert r.status_code == 404, path
        assert r.json()["error"] == "NotFound"
        assert r.json()["detail"]


def test_history_and_diff(client: TestClient, wiki_fx: WikiFixture) -> None:
    history = client.get(f"/pages/{K8S}/history").json()
    ids = [c["id"] for c in history["commits"]]
    assert ids == [wiki_fx.commits[1], wiki_fx.commits[0]]
    assert history["commits"][0]["trailers"]["Lore-Job"] == ["7"]
    assert history["commits"][0]["trailers"]["Lore-Source"] == [wiki_fx.source_ids["incident"]]
    diff = client.get(f"/pages/{K8S}/diff").json()
    assert (diff["a"], diff["b"]) == (wiki_fx.commits[0], wiki_fx.commits[1])
    assert "+Kubernetes is the container platform that runs the [[Payments API]]" in diff["diff"]
    explicit = client.get(f"/pages/{K8S}/diff", params={"a": wiki_fx.commits[1], "b": wiki_fx.commits[1]}).json()
    assert explicit["diff"] == ""
    unknown = client.get(f"/pages/{K8S}/diff", params={"a": "deadbeef" * 5, "b": wiki_fx.commits[1]})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "NotFound"
    assert client.get(f"/pages/{K8S}/diff", params={"a": "--output=/tmp/x"}).status_code == 422
    assert client.get("/pages/wiki/systems/nope.md/history").status_code == 404


def test_entities(client: TestClient) -> None:
    entity = client.get("/entities/payments-api").json()
    assert entity["name"] == "Payments API"
    assert entity["aliases"] == ["payments service"]
    assert entity["claim_counts"] == {"active": 3}
    assert entity["links_out"] == [{"relation": "runs on", "name": "Kubernetes", "page": K8S}]
    k8s = client.get("/entities/kubernetes").json()
    assert k8s["links_in"][0]["name"] == "Payments API"
    assert {c["status"] for c in k8s["claims"]} == {"disputed"}
    assert client.get("/entities/kubernetes", params={"type": "people"}).status_code == 404
    assert client.get("/entities/nobody").json()["error"] == "NotFound"


def test_sources_list_and_detail(client: TestClient, wiki_fx: WikiFixture) -> None:
    listed = client.get("/sources").json()
    assert listed["total"] == 4
    assert {s["status"] for s in listed["sources"]} == {"done"}
    sid = wiki_fx.source_ids["adr"]
    detail = client.get(f"/sources/{sid}").json()
    assert detail["source"]["title"] == "Platform ADR 7"
    assert {c["id"] for c in detail["claims"]} == {"c0k8s129aaaa", "c0payown1111", "c0paydeploy3", "c0coreown444"}
    assert detail["pages_touched"][0] == "wiki/sources/platform-adr-7.md"
    assert set(detail["pages_touched"][1:]) == {K8S, PAYMENTS, "wiki/teams/core-team.md"}
    assert detail["errors"] == []
    assert client.get(f"/sources/{sid[:10]}").json()["source"]["id"] == sid
    assert client.get("/sources/0000000000").status_code == 404
    assert client.get("/sources", params={"status": "failed"}).json() == {"sources": [], "total": 0}


def test_contradictions_and_changes(client: TestClient, wiki_fx: WikiFixture) -> None:
    rows = client.get("/contradictions").json()["contradictions"]
    assert len(rows) == 1
    row = rows[0]
    assert row["entity_name"] == "Kubernetes"
    assert row["entity_page"] == K8S
    assert {row["claim_a"]["source_title"], row["claim_b"]["source_title"]} == {
        "Platform ADR 7",
        "Incident 2024-03 postmortem",
    }
    assert client.get("/contradictions", params={"status": "resolved"}).json() == {"contradictions": [], "total": 0}
    changes = client.get("/changes", params={"limit": 2}).json()["commits"]
    assert [c["id"] for c in changes] == [wiki_fx.commits[1], wiki_fx.commits[0]]
    assert PAYMENTS in changes[0]["paths"]


def test_health_and_metrics(make_client) -> None:  # type: ignore[no-untyped-def]
    ok = make_client()
    assert ok.get("/health/live").json() == {"status": "ok", "checks": {}}
    ready = ok.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "repository": "ok", "model": "ok"}}
    ok.get(f"/pages/{K8S}")
    metrics = ok.get("/metrics").text
    assert 'lore_http_requests_total{method="GET",route="/pages/{path:path}",status="200"} 1.0' in metrics
    assert 'lore_sources{status="done"} 4.0' in metrics
    assert "lore_contradictions_open 1.0" in metrics
    assert 'lore_model_breaker_state{state="closed"} 0.0' in metrics
    assert "lore_queue_depth 0.0" in metrics

    degraded = make_client(model_health=lambda: "degraded")
    ready = degraded.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert degraded.get(f"/pages/{K8S}").status_code == 200  # reads keep working
    assert 'lore_model_breaker_state{state="open"} 2.0' in degraded.get("/metrics").text

    def broker_down() -> None:
        raise ConnectionError("redis at 127.0.0.1:1 refused the connection")

    down = make_client(queue_ping=broker_down)
    ready = down.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "down"
    assert "refused" in ready.json()["checks"]["queue"]


def test_security_headers_on_every_response(client: TestClient) -> None:
    for url in ("/pages", f"/pages/{K8S}?format=html", "/ui", "/nope", "/static/lore.css", "/openapi.json"):
        r = client.get(url)
        csp = r.headers["content-security-policy"]
        # UI pages load the app's own /static/lore.js; nothing else may run script
        assert ("script-src 'self';" if url == "/ui" else "script-src 'none'") in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert "default-src 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_unknown_route_uses_error_body(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404
    assert r.json()["error"] == "NotFound"
    bad = client.get("/pages", params={"limit": 0})
    assert bad.status_code == 422
    assert bad.json()["error"] == "ValidationError"


def test_openapi_has_a_response_model_for_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    expected = {
        "/pages", "/pages/{path}", "/pages/{path}/history", "/pages/{path}/diff", "/entities/{slug}", "/sources",
        "/sources/{source_id}", "/contradictions", "/changes", "/query", "/health/live", "/health/ready", "/metrics",
    }  # fmt: skip
    assert expected <= set(spec["paths"])
    for path, item in spec["paths"].items():
        for method, op in item.items():
            ok = op["responses"].get("200") or op["responses"].get("202")
            assert ok, f"{method} {path} has no documented success response"
            assert ok.get("content"), f"{method} {path} has no documented success body"
            assert op.get("summary"), f"{method} {path} has no summary"
    upload = spec["paths"]["/sources"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"401", "403", "413", "429"} <= set(upload["responses"])


def test_locked_database_is_503_with_retry_after(make_client, wiki_fx: WikiFixture) -> None:  # type: ignore[no-untyped-def]
    from store.db import make_engine, make_session_factory

    url = str(wiki_fx.session_factory.kw["bind"].url)
    impatient = make_session_factory(make_engine(url, busy_timeout_ms=50))
    client = make_client(session_factory=impatient)
    holder = make_engine(url)
    with holder.connect() as conn:
        conn.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE: this connection now holds the write lock
        r = client.get(f"/pages/{PAYMENTS}")
        conn.rollback()
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json() == {"error": "OperationalError", "detail": "the database is busy or unreachable; retry shortly"}
    assert client.get(f"/pages/{PAYMENTS}").status_code == 200
