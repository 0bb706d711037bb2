"""The FastAPI app factory: REST routes, the MCP server at ``/mcp``, the web UI at ``/ui``.

``create_app(deps)`` wires plain collaborators (:class:`api.deps.ApiDeps`) into one ASGI app. Start-up
stores the bootstrap API keys (hashed) and starts the MCP session manager. Every response carries the
security headers of :mod:`api.security`; every domain error becomes ``{"error", "detail"}`` through
the one handler of :mod:`api.errors`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.routing import Route

from api.auth import install_bootstrap_keys
from api.context import AppContext
from api.deps import ApiDeps
from api.errors import install_error_handler
from api.keys import UsageRecorder
from api.mcp_server import McpGate, build_mcp
from api.metrics import (
    HttpMetrics,
    LedgerCollector,
    MetricsMiddleware,
    breaker_from_health,
    register_runtime_collectors,
)
from api.openapi import install_docs, operation_id
from api.ratelimit import RateLimiter
from api.reads import ReadService
from api.request_id import RequestIdMiddleware
from api.routes import disputes, health, ledger, lint, pages, query, sources_write
from api.security import SecurityHeadersMiddleware
from api.session import SessionCodec
from api.ui import router as ui_router
from api.ui_actions import router as ui_actions_router
from api.ui_auth import router as ui_auth_router
from search.tiers import QueryEngine
from store.db import unit_of_work

STATIC_DIR = Path(__file__).parent / "static"
API_VERSION = "1.0.0"

log = logging.getLogger(__name__)

DESCRIPTION = """Lore serves a git-backed wiki of cited entity pages written at ingest time.

Read pages (`/pages`), their history and diffs, entities, sources and their status, disputes between
sources (`/contradictions`) and recent changes (`/changes`). `GET /query` answers a question with page
sections, claims and raw source chunks ranked together (each hit says which it is and where it came
from); `tier=` asks one of them alone. Upload documents with `POST /sources` (an API key with the
`ingest` scope); resolve disputes with `POST /contradictions/{id}/resolve` (`curate`). Agents can use the
same through MCP (streamable HTTP) at `/mcp`; people can browse `/ui`. This explorer is `/docs`.

Errors are `{"error": ClassName, "detail": message}`.
"""


def _ephemeral_secret() -> str:
    log.info("no session secret given: web UI logins last until this app stops")
    return secrets.token_urlsafe(48)


def create_app(deps: ApiDeps) -> FastAPI:
    """Build the Lore API app around ``deps``.

    Args:
        deps: the collaborators (database, git store, search index, intake limits, dispatcher ...).

    Returns:
        An ASGI app; run it with uvicorn. Its lifespan must run (uvicorn and ``TestClient`` as a
        context manager both do): it stores the bootstrap keys and starts the MCP session manager.
    """
    registry = CollectorRegistry()
    # In multiprocess mode the request metrics go to the shared folder and come back through the
    # multiprocess collector, summed over every API process; registering them here too would repeat them.
    http_metrics = HttpMetrics(registry if deps.metrics_dir is None else CollectorRegistry())
    breaker = deps.breaker_state or breaker_from_health(deps.model_health)
    registry.register(LedgerCollector(deps.session_factory, breaker))
    register_runtime_collectors(registry, deps.metrics_dir)
    ctx = AppContext(
        deps=deps,
        reads=ReadService(deps.store, deps.session_factory, QueryEngine(deps.session_factory, deps.store, deps.search)),
        upload_limiter=RateLimiter(deps.uploads_per_minute, 60.0, storage_uri=deps.rate_limit_storage),
        registry=registry,
        usage=UsageRecorder(deps.session_factory),
        sessions=SessionCodec(deps.session_secret or _ephemeral_secret(), deps.session_max_age_s),
    )
    mcp = build_mcp(ctx)
    mcp_endpoint = McpGate(mcp, ctx)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Always: a configuration that lists no keys any more must revoke the bootstrap keys it had.
        with unit_of_work(deps.session_factory) as session:
            result = install_bootstrap_keys(session, deps.api_keys)
        if result.revoked:
            log.info("revoked bootstrap keys no longer configured: %s", ", ".join(result.revoked))
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            ctx.reads.close()

    app = FastAPI(
        title="Lore",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN with inline script: api.openapi serves it
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.state.lore = ctx
    install_error_handler(app)
    for module in (pages, ledger, sources_write, disputes, query, health, lint):
        app.include_router(module.router)
    for ui_part in (ui_auth_router, ui_router, ui_actions_router):
        app.include_router(ui_part)
    install_docs(app)
    app.router.routes.append(Route("/mcp", endpoint=mcp_endpoint, methods=["GET", "POST", "DELETE"]))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=307)

    if deps.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(deps.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version"],
            expose_headers=["Mcp-Session-Id", "Retry-After", "WWW-Authenticate"],
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware, metrics=http_metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
