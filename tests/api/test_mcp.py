"""The MCP server over streamable HTTP, driven by the official SDK's client against uvicorn on loopback."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from api.app import create_app
from tests.api.conftest import CURATE_KEY, INGEST_KEY, READ_KEY, deps_for, serve
from tests.api.wiki_builder import WikiFixture

TOOLS = {"query", "get_page", "list_pages", "page_history", "contradictions", "source_status", "ingest",
         "resolve_dispute"}


def _client(port: int, key: str | None = None, host: str | None = None) -> Client:
    url = f"http://127.0.0.1:{port}/mcp"
    if key is None and host is None:
        return Client(url)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if host:
        headers["Host"] = host  # as an agent on another host reaching Lore by its public name would send
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return Client(streamable_http_client(url, http_client=http))


def _payload(result: Any) -> Any:
    assert not result.is_error, result
    if result.structured_content is not None:
        data = result.structured_content
        return data.get("result", data) if set(data) == {"result"} else data
    return json.loads(result.content[0].text)


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_mcp_tools_over_streamable_http(fresh_wiki: WikiFixture) -> None:
    app = create_app(deps_for(fresh_wiki, mcp_allowed_hosts=None))  # loopback-only host check

    async def scenario(port: int) -> None:
        async with _client(port) as client:
            listed = await client.list_tools()
            tools = {t.name: t for t in listed.tools}
            assert set(tools) == TOOLS
            for tool in tools.values():
                assert tool.description
                assert len(tool.description) > 40
                for name, prop in tool.input_schema.get("properties", {}).items():
                    assert prop.get("description"), f"{tool.name}.{name} has no description"

            answer = _payload(await client.call_tool("query", {"question": "Who owns the payments service?"}))
            assert answer["tier"] == 1
            assert answer["entity"] == "Payments API"
            quotes = [c["quote"] for h in answer["hits"] for c in h["citations"]]
            assert "The Payments API is owned by the Core team" in quotes

            page = await client.call_tool("get_page", {"page": "Kubernetes"})
            assert not page.is_error
            assert "# Kubernetes" in _text(page)
            assert "[^c0k8s129aaaa]" in _text(page)
            as_json = json.loads(
                _text(await client.call_tool("get_page", {"page": "wiki/services/payments-api.md", "format": "json"}))
            )
            assert as_json["citations"]["c0payown1111"]["source_title"] == "Platform ADR 7"

            missing = await client.call_tool("get_page", {"page": "No such thing"})
            assert missing.is_error
            assert "NotFound" in _text(missing)

            listed_pages = _payload(await client.call_tool("list_pages", {"type": "systems"}))
            assert [p["path"] for p in listed_pages["pages"]] == ["wiki/systems/kubernetes.md"]
            history = _payload(await client.call_tool("page_history", {"path": "wiki/systems/kubernetes.md"}))
            assert len(history) == 2
            disputes = _payload(await client.call_tool("contradictions", {}))
            assert disputes[0]["entity_name"] == "Kubernetes"

            refused = await client.call_tool("ingest", {"text": "# Note\n\nsome text", "name": "note.md"})
            assert refused.is_error
            assert "Unauthorized" in _text(refused)

        async with _client(port, READ_KEY) as reader:
            underscoped = await reader.call_tool("ingest", {"text": "# Note\n\nsome text", "name": "note.md"})
            assert "Forbidden" in _text(underscoped)

        async with _client(port, INGEST_KEY) as ingester:
            doc = "# Queue ADR\n\nThe work queue keeps at most 500 messages per tenant.\n"
            added = _payload(await ingester.call_tool("ingest", {"text": doc, "name": "queue-adr.md"}))
            assert added["status"] == "pending"
            assert len(added["job_ids"]) == 1
            status = _payload(await ingester.call_tool("source_status", {"source_id": added["source_id"]}))
            assert status["source"]["origin"] == "queue-adr.md"
            assert status["jobs"][0]["kind"] == "extract"

    with serve(app) as port:
        anyio.run(scenario, port)


def test_mcp_needs_a_key_when_reads_are_closed(fresh_wiki: WikiFixture) -> None:
    app = create_app(deps_for(fresh_wiki, open_reads=False))

    async def refused(port: int) -> None:
        async with _client(port) as client:
            await client.list_tools()

    async def allowed(port: int) -> list[str]:
        async with _client(port, READ_KEY) as client:
            return [t.name for t in (await client.list_tools()).tools]

    with serve(app) as port:
        with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK reports the HTTP 401 as a generic error
            anyio.run(refused, port)
        assert set(anyio.run(allowed, port)) == TOOLS
        raw = httpx2.post(f"http://127.0.0.1:{port}/mcp", json={}, headers={"Accept": "application/json"})
        assert raw.status_code == 401
        assert raw.headers["www-authenticate"].startswith("Bearer")


def test_mcp_beyond_loopback_with_configured_hosts(fresh_wiki: WikiFixture) -> None:
    app = create_app(deps_for(fresh_wiki, open_reads=False, mcp_allowed_hosts=["lore.example.com:*", "mcp.internal"]))

    async def scenario(port: int, host: str) -> None:
        async with _client(port, READ_KEY, host=host) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            page = await client.call_tool("get_page", {"page": "Kubernetes"})
            assert not page.is_error
            assert "# Kubernetes" in _text(page)

    with serve(app) as port:
        anyio.run(scenario, port, "lore.example.com:8443")
        anyio.run(scenario, port, "mcp.internal")
        for host in ("evil.example.com", "mcp.internal:8000", f"lore.example.com.evil.net:{port}"):
            raw = httpx2.post(
                f"http://127.0.0.1:{port}/mcp", json={},
                headers={"Accept": "application/json, text/event-stream", "Host": host,
                         "Authorization": f"Bearer {READ_KEY}"},
            )  # fmt: skip
            assert raw.status_code == 421, host

    loopback_only = create_app(deps_for(fresh_wiki, mcp_allowed_hosts=None))
    with serve(loopback_only) as port:
        raw = httpx2.post(
            f"http://127.0.0.1:{port}/mcp", json={},
            headers={"Accept": "application/json, text/event-stream", "Host": "lore.example.com"},
        )  # fmt: skip
        assert raw.status_code == 421


def test_mcp_resolves_a_dispute_with_a_curate_key_only(fresh_wiki: WikiFixture) -> None:
    app = create_app(deps_for(fresh_wiki, open_reads=False, mcp_allowed_hosts=["lore.example.com:*"]))
    args = {"dispute_id": 1, "decision": "keep", "claim": "c0k8s129aaaa", "note": "the ADR is newer"}

    async def scenario(port: int) -> None:
        async with _client(port, READ_KEY, host="lore.example.com:8443") as reader:
            listed = _payload(await reader.call_tool("contradictions", {}))
            assert [d["id"] for d in listed] == [1]
            refused = await reader.call_tool("resolve_dispute", args)
            assert refused.is_error
            assert "curate" in _text(refused)
        async with _client(port, CURATE_KEY, host="lore.example.com:8443") as curator:
            done = _payload(await curator.call_tool("resolve_dispute", args))
            assert done["dispute"]["decision"] == "keep"
            assert done["dispute"]["resolved_by"] == "reviewer"
            assert done["changed"] == {"c0k8s128bbbb": "superseded", "c0k8s129aaaa": "active"}
            again = await curator.call_tool("resolve_dispute", args)
            assert again.is_error
            assert "already resolved" in _text(again)

    with serve(app) as port:
        anyio.run(scenario, port)
