"""The OpenAPI document tells the truth about errors, operationIds read well, and /docs works offline."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import deps_for, serve
from tests.api.test_browser import browser_page  # noqa: F401 - the fixture
from tests.api.wiki_builder import WikiFixture


def test_operation_ids_are_the_route_names(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) >= 14
    assert len(ids) == len(set(ids))
    assert "page_history" in ids
    for op_id in ids:
        assert re.fullmatch(r"[a-z][a-z_]*[a-z]", op_id), op_id
        assert "__" not in op_id


def test_validation_errors_are_documented_as_the_handler_sends_them(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert set(doc["components"]["schemas"]["ErrorOut"]["required"]) == {"error", "detail"}
    documented = 0
    for item in doc["paths"].values():
        for op in item.values():
            if "422" in op["responses"]:
                documented += 1
                schema = op["responses"]["422"]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}
            assert "503" in op["responses"]
    assert documented >= 10
    sent = client.get("/pages", params={"limit": "many"})
    assert sent.status_code == 422
    assert set(sent.json()) == {"error", "detail"}
    assert sent.json()["error"] == "ValidationError"


def test_docs_page_is_served_offline_under_its_own_csp(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp
    html = page.text
    assert "http://" not in html
    assert "https://" not in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert len(scripts) == 2
    assert all('src="' in attrs and not body.strip() for attrs, body in scripts)  # no inline script
    for src in re.findall(r'(?:src|href)="([^"]+)"', html):
        asset = client.get("/" + src)
        assert asset.status_code == 200, src
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    # the rest of the app keeps its script-free policy; the UI allows its own file, never inline script
    assert "script-src 'none'" in client.get("/pages").headers["content-security-policy"]
    ui_csp = client.get("/ui").headers["content-security-policy"]
    assert "script-src 'self';" in ui_csp
    assert "unsafe-inline" not in ui_csp


@pytest.mark.browser
def test_swagger_ui_renders_every_operation_in_chromium(
    browser_page: Any,  # noqa: F811
    fresh_wiki: WikiFixture,
    artifacts_dir: Path,
) -> None:
    page = browser_page
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    outside: list[str] = []
    with serve(create_app(deps_for(fresh_wiki))) as port:
        base = f"http://127.0.0.1:{port}"
        page.on("request", lambda r: None if r.url.startswith(base) else outside.append(r.url))
        page.goto(f"{base}/docs")
        page.wait_for_selector(".opblock-summary", timeout=30_000)
        operations = page.locator(".opblock").count()
        page.locator(".opblock-summary", has_text="/pages/{path}/history").first.click()
        page.wait_for_selector("text=page_history")
        page.screenshot(path=str(artifacts_dir / "api-docs.png"), full_page=False)
    assert operations >= 14
    assert outside == []
    assert [p for p in problems if "Content Security Policy" in p or "Refused" in p] == []
    assert problems == []
