"""The read path from memory: no process per read, ETags and 304, no stale page after a publish, and the
same page content through REST, MCP and the web UI (they all call :mod:`api.reads`)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from mcp import Client

from api.app import create_app
from store.models import Claim
from tests.api.conftest import deps_for, serve
from tests.api.wiki_builder import WikiFixture

PAYMENTS = "wiki/services/payments-api.md"


def _children() -> set[int]:
    """Pids of this process's live children, from /proc."""
    me = str(os.getpid())
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me:
            out.add(int(entry.name))
    return out


def _page_text(title: str, line: str) -> bytes:
    return f"---\ntitle: {title}\ntype: services\n---\n# {title}\n\n{line}\n".encode()


def test_a_page_read_spawns_no_process(
    make_client: Callable[..., TestClient], fresh_wiki: WikiFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(fresh_wiki)
    for fmt in ("json", "html", "md"):  # the first read opens the object reader (kept for the app's life)
        assert client.get(f"/pages/{PAYMENTS}?format={fmt}").status_code == 200
    spawned: list[Any] = []
    real_init = subprocess.Popen.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        spawned.append(args[0] if args else kwargs.get("args"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", counting_init)
    before = _children()
    paths = [PAYMENTS, *(p for p in fresh_wiki.paths.values() if p.startswith("wiki/") and p.endswith(".md"))]
    for i in range(100):
        r = client.get(f"/pages/{paths[i % len(paths)]}?format={('json', 'html', 'md')[i % 3]}")
        assert r.status_code == 200
    assert spawned == [], f"page reads started processes: {spawned[:3]}"
    assert _children() <= before
    assert client.get("/pages").status_code == 200
    assert spawned == []


def test_304_on_a_matching_etag_and_200_after_the_page_changes(
    make_client: Callable[..., TestClient], fresh_wiki: WikiFixture
) -> None:
    client = make_client(fresh_wiki)
    for fmt in ("json", "html", "md"):
        first = client.get(f"/pages/{PAYMENTS}?format={fmt}")
        tag = first.headers["etag"]
        again = client.get(f"/pages/{PAYMENTS}?format={fmt}", headers={"If-None-Match": tag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == tag
        assert again.headers["cache-control"] == "no-cache"
        other = client.get(f"/pages/{PAYMENTS}?format={fmt}", headers={"If-None-Match": '"something-else"'})
        assert other.status_code == 200
        assert other.content == first.content
    tags = {fmt: client.get(f"/pages/{PAYMENTS}?format={fmt}").headers["etag"] for fmt in ("json", "html", "md")}
    version = fresh_wiki.store.read(PAYMENTS).version
    fresh_wiki.store.write({PAYMENTS: _page_text("Payments API", "Now run by the Edge team.")}, {}, "edit")
    for fmt, tag in tags.items():
        r = client.get(f"/pages/{PAYMENTS}?format={fmt}", headers={"If-None-Match": tag})
        assert r.status_code == 200, fmt
        assert r.headers["etag"] != tag
        assert b"Edge team" in r.content
    # The old file at its commit is immutable; the JSON at HEAD follows the ledger.
    old_commit = fresh_wiki.commits[-1]
    at = client.get(f"/pages/{PAYMENTS}?format=md&at={old_commit}")
    assert at.status_code == 200
    assert "immutable" in at.headers["cache-control"]
    assert b"Edge team" not in at.content
    assert fresh_wiki.store.read(PAYMENTS).version != version


def test_json_follows_the_ledger_without_a_new_commit(
    make_client: Callable[..., TestClient], fresh_wiki: WikiFixture
) -> None:
    client = make_client(fresh_wiki)
    page = client.get(f"/pages/{PAYMENTS}").json()
    claim_id = "c0pay503222"
    assert page["citations"][claim_id]["status"] == "active"
    with fresh_wiki.session_factory() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None
        claim.status = "retracted"
        session.commit()
    page = client.get(f"/pages/{PAYMENTS}").json()
    assert page["citations"][claim_id]["status"] == "retracted"


def test_no_page_from_an_older_head_after_a_publish(
    make_client: Callable[..., TestClient], fresh_wiki: WikiFixture
) -> None:
    client = make_client(fresh_wiki)
    for n in range(4):
        line = f"Revision number {n} of this page."
        fresh_wiki.store.write({PAYMENTS: _page_text("Payments API", line)}, {}, f"edit {n}")
        head = fresh_wiki.store.head()
        for fmt in ("md", "html", "json"):
            r = client.get(f"/pages/{PAYMENTS}?format={fmt}")
            assert r.status_code == 200
            assert line in r.text, (n, fmt)
        assert client.get(f"/pages/{PAYMENTS}").json()["commit"] == head
    fresh_wiki.store.write({PAYMENTS: None}, {}, "delete")
    assert client.get(f"/pages/{PAYMENTS}").status_code == 404


def test_rest_mcp_and_ui_return_the_same_page(fresh_wiki: WikiFixture) -> None:
    app = create_app(deps_for(fresh_wiki))
    with TestClient(app) as client:
        rest_md = client.get(f"/pages/{PAYMENTS}?format=md").text
        rest_json = client.get(f"/pages/{PAYMENTS}?format=json").json()
        rest_html = client.get(f"/pages/{PAYMENTS}?format=html").text
        ui = client.get(f"/ui/pages/{PAYMENTS}").text
    # The UI links pages under /ui; otherwise its article is the API's HTML body.
    article = rest_html.split("<article>", 1)[1].split("</article>", 1)[0]
    assert article.replace('href="/pages/', 'href="/ui/pages/') in ui
    assert "Payments API" in ui

    async def scenario(port: int) -> tuple[str, str]:
        async with Client(f"http://127.0.0.1:{port}/mcp") as mcp:
            md = await mcp.call_tool("get_page", {"page": PAYMENTS, "format": "md"})
            js = await mcp.call_tool("get_page", {"page": "Payments API", "format": "json"})
        return (
            "".join(getattr(c, "text", "") for c in md.content),
            "".join(getattr(c, "text", "") for c in js.content),
        )

    with serve(create_app(deps_for(fresh_wiki))) as port:
        mcp_md, mcp_json = anyio.run(scenario, port)
    assert mcp_md == rest_md
    assert json.loads(mcp_json) == rest_json
