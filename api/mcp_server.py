"""The MCP server for agents, mounted in the API app at ``/mcp`` (streamable HTTP, official ``mcp`` SDK).

Tools: ``query``, ``get_page``, ``list_pages``, ``page_history``, ``contradictions``, ``source_status``
(reads), ``ingest`` (enqueue only: the document goes through intake; extraction runs later in the
workers) and ``resolve_dispute`` (``curate`` scope). They call the same functions as the REST routes.
Authentication is the API's: an ``Authorization: Bearer <key>`` header checked by :class:`McpGate` for
every request (a ``read`` key unless reads are open) and again by ``ingest`` and ``resolve_dispute`` for
their scopes.

The transport is stateless with JSON responses, so any API replica can serve any request.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from api.context import AppContext
from api.errors import ApiError, NotFound, error_body, status_for
from api.intake import submit_document
from api.routes.pages import commit_out
from api.routes.query import answer_out
from api.schemas import ContradictionOut, SourceDetailOut
from ingest.errors import IngestError
from search.errors import SearchError
from store.errors import StoreError
from synth.disputes import DisputeError

INSTRUCTIONS = """Lore is a wiki of entity pages (systems, services, teams, people, concepts, events ...)
written from ingested documents. Every fact on a page cites a claim id ([^id] footnotes) whose source
and verbatim quote you can show. Start with `query` for a question; open pages with `get_page`; use
`list_pages` to browse. `contradictions` lists where sources disagree. `ingest` adds a document
(requires an API key with the ingest scope); poll `source_status` until it is done."""

DOMAIN_ERRORS = (ApiError, StoreError, IngestError, SearchError, DisputeError)
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def _tool_error(exc: Exception) -> ToolError:
    body = error_body(exc)
    return ToolError(f"{body['error']}: {body['detail']}")


def transport_security(hosts: list[str] | None) -> TransportSecuritySettings:
    """The DNS-rebinding protection for ``/mcp``: loopback names always, plus the configured patterns.

    Args:
        hosts: ``host``, ``host:port`` or ``host:*`` patterns (``LORE_API__MCP_ALLOWED_HOSTS``); a request
            whose ``Host`` matches none is refused with 421. ``["*"]`` turns the check off. Browsers'
            ``Origin`` is allowed for the same hosts over http and https.
    """
    if hosts and "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    extra = list(hosts or [])
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=LOOPBACK_HOSTS + extra,
        allowed_origins=LOOPBACK_ORIGINS + [f"{scheme}://{h}" for h in extra for scheme in ("http", "https")],
    )


def build_mcp(ctx: AppContext) -> MCPServer:
    """Create the MCP server with Lore's tools, bound to ``ctx``; its session manager is ready to run."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    mcp = MCPServer("lore", instructions=INSTRUCTIONS, version="1.0.0")
    # MCPServer calls logging.basicConfig (a rich handler on the root logger); logging is the
    # composition root's business, so undo that side effect.
    root.handlers[:] = handlers
    root.setLevel(level)

    @mcp.tool(
        description="Answer a question from the wiki, citing sources. Ranks page sections, claims and raw "
        "source excerpts together by how well they match; each hit says where it came from."
    )
    def query(
        question: Annotated[str, Field(min_length=1, max_length=1000, description="The question in plain words.")],
        k: Annotated[int, Field(ge=1, le=50, description="Most hits to return.")] = 5,
    ) -> dict[str, Any]:
        try:
            return answer_out(ctx.reads.query(question, k)).model_dump(mode="json")
        except DOMAIN_ERRORS as exc:
            raise _tool_error(exc) from None

    @mcp.tool(
        description="Read one wiki page. Pass its path (e.g. wiki/systems/kubernetes.md, as returned by "
        "query or list_pages) or its title. Markdown shows footnotes [^claim-id]; json adds the claims "
        "and each footnote's source and quote."
    )
    def get_page(
        page: Annotated[str, Field(min_length=1, max_length=400, description="Page path or page title.")],
        format: Annotated[
            Literal["md", "json"], Field(description="md: the page file; json: body, claims and citations.")
        ] = "md",
    ) -> str:
        try:
            path = ctx.reads.resolve(page)
            if path is None:
                raise NotFound(f"no page named {page!r}; use list_pages to find one")
            if format == "md":
                return ctx.reads.read(path).text
            return ctx.reads.page_json(path)
        except DOMAIN_ERRORS as exc:
            raise _tool_error(exc) from None

    @mcp.tool(
        description="List wiki pages (path, title, type), sorted by path. Filter by type (an entity type "
        "such as systems or people, 'sources' for source summaries, 'catalog' for index/log pages) "
        "and by text in the title or path."
    )
    def list_pages(
        type: Annotated[str | None, Field(max_length=40, description="Only pages of this type.")] = None,
        contains: Annotated[str | None, Field(max_length=200, description="Only titles/paths containing this.")] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Most pages to return.")] = 100,
        offset: Annotated[int, Field(ge=0, le=10_000_000, description="Pages to skip (for paging).")] = 0,
    ) -> dict[str, Any]:
        listing = ctx.reads.list_pages(type=type, contains=contains, limit=limit, offset=offset)
        return {"total": listing.total, "commit": listing.commit, "pages": [r.model_dump() for r in listing.pages]}

    @mcp.tool(
        description="Commits that changed a page, newest first, with their messages and trailers "
        "(Lore-Source names the source whose ingest changed it)."
    )
    def page_history(
        path: Annotated[str, Field(min_length=1, max_length=400, description="Page path, e.g. wiki/people/ada.md.")],
        limit: Annotated[int, Field(ge=1, le=200, description="Most commits to return.")] = 20,
    ) -> list[dict[str, Any]]:
        try:
            return [commit_out(c).model_dump(mode="json") for c in ctx.reads.history(path, limit=limit)]
        except DOMAIN_ERRORS as exc:
            raise _tool_error(exc) from None

    @mcp.tool(
        description="Disputes: pairs of claims about one entity that different sources disagree on, "
        "each with its quote and source. Nothing is deleted for disagreeing; read both sides."
    )
    def contradictions(
        status: Annotated[
            Literal["open", "resolved", "all"], Field(description="open (default), resolved, or all.")
        ] = "open",
        limit: Annotated[int, Field(ge=1, le=500, description="Most disputes to return.")] = 50,
    ) -> list[dict[str, Any]]:
        rows = ctx.reads.contradictions(None if status == "all" else status, limit=limit)
        return [ContradictionOut.model_validate(r).model_dump(mode="json") for r in rows]

    @mcp.tool(
        description="Status of an ingested source: pending, extracting, done or failed (with the reason), "
        "its claims, the pages they appear on, and its jobs. Use the source_id returned by ingest."
    )
    def source_status(
        source_id: Annotated[
            str, Field(min_length=8, max_length=64, description="The source's sha256 (or a unique prefix of 8+ hex).")
        ],
    ) -> dict[str, Any]:
        try:
            detail = ctx.reads.source(source_id)
        except DOMAIN_ERRORS as exc:
            raise _tool_error(exc) from None
        return SourceDetailOut.model_validate(detail).model_dump(mode="json")

    @mcp.tool(
        description="Add a document to the wiki (enqueue only: extraction and page updates happen later). "
        "Needs an API key with the ingest scope. Returns the source_id to poll with source_status; "
        "identical content is recognised and not processed twice."
    )
    def ingest(
        text: Annotated[str, Field(min_length=1, description="The document's text (markdown or plain text).")],
        name: Annotated[
            str, Field(min_length=1, max_length=300, description="A name for the document, e.g. 'adr-021.md'.")
        ],
        context: Context,
    ) -> dict[str, Any]:
        headers = context.headers or {}
        try:
            principal = ctx.authorize(headers.get("authorization"), "ingest")
            data = text.encode("utf-8")
            if len(data) > ctx.deps.max_upload_bytes:
                raise ToolError(f"PayloadTooLarge: the document is larger than {ctx.deps.max_upload_bytes} bytes")
            ctx.upload_limiter.hit(principal.name)
            out, _created = submit_document(ctx.deps, data, name)
            return out.model_dump()
        except DOMAIN_ERRORS as exc:
            raise _tool_error(exc) from None

    @mcp.tool(
        description="Resolve an open dispute (see `contradictions`): keep one claim (the other moves to the "
        "page's history), mark both valid, or dismiss a false flag. Needs an API key with the curate scope. "
        "The decision, note and reviewer show on the entity's page and in wiki/contradictions.md."
    )
    def resolve_dispute(
        dispute_id: Annotated[int, Field(ge=1, description="The dispute's id (from `contradictions`).")],
        decision: Annotated[
            Literal["keep", "both_valid", "dismiss"], Field(description="keep, both_valid or dismiss.")
        ],
        context: Context,
        claim: Annotated[str | None, Field(max_length=40, description="The claim id to keep (keep only).")] = None,
        note: Annotated[str, Field(max_length=2000, description="Why (shown on the page).")] = "",
    ) -> dict[str, Any]:
        from api.schemas import ResolveIn
        from api.writes import resolve

        headers = context.headers or {}
        try:
            principal = ctx.authorize(headers.get("authorization"), "curate")
            body = ResolveIn(decision=decision, claim=claim, note=note)
            return resolve(ctx.deps, dispute_id, body, principal.name).model_dump(mode="json")
        except DOMAIN_ERRORS as exc:
            raise _tool_error(exc) from None

    security = transport_security(ctx.deps.mcp_allowed_hosts)
    # Creates the session manager (run by the app's lifespan); the returned Starlette app is not used,
    # the API mounts the transport itself behind McpGate.
    mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=security,
    )
    return mcp


class McpGate:
    """ASGI endpoint in front of the MCP transport: checks the API key like the REST read routes."""

    def __init__(self, mcp: MCPServer, ctx: AppContext) -> None:
        self.transport = StreamableHTTPASGIApp(mcp.session_manager)
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = None
            for key, value in scope.get("headers", []):
                if key == b"authorization":
                    header = value.decode("latin-1")
            try:
                await run_in_threadpool(self.ctx.authorize, header, "read")
            except ApiError as exc:
                response = JSONResponse(error_body(exc), status_code=status_for(exc), headers=exc.headers)
                await response(scope, receive, send)
                return
        await self.transport(scope, receive, send)


__all__ = ["INSTRUCTIONS", "McpGate", "build_mcp", "transport_security"]
