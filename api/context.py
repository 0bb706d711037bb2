"""Per-app state shared by the REST routes, the MCP tools and the web UI, and the FastAPI dependencies
that hand it (and the caller's identity) to a route."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, authorize
from api.deps import ApiDeps
from api.keys import UsageRecorder
from api.ratelimit import RateLimiter
from api.reads import ReadService
from api.session import SessionCodec

#: Declares the bearer scheme in the OpenAPI document; the header is checked by :func:`authorize`.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <secret>`.")


@dataclass
class AppContext:
    """Everything a request handler needs besides its arguments."""

    deps: ApiDeps
    reads: ReadService
    upload_limiter: RateLimiter
    registry: CollectorRegistry
    usage: UsageRecorder | None = None
    sessions: SessionCodec | None = None  # the web UI's login cookies (None: the UI has no login)

    def authorize(self, authorization: str | None, scope: str) -> Principal:
        """Check a raw ``Authorization`` header for ``scope`` (see :func:`api.auth.authorize`).

        A key that passes has its last-used time recorded (at most once a minute per key).
        """
        with self.deps.session_factory() as session:
            principal = authorize(session, authorization, scope, open_reads=self.deps.open_reads)
        if principal.key_id is not None and self.usage is not None:
            self.usage.touch(principal.key_id)
        return principal


async def app_context(request: Request) -> AppContext:
    """The :class:`AppContext` of the app serving ``request``."""
    ctx: AppContext = request.app.state.lore
    return ctx


async def _authorize(ctx: AppContext, request: Request, scope: str) -> Principal:
    """Check the caller; only a key lookup (a database read) leaves the event loop.

    The dependencies are ``async`` so a request does not hop to the thread pool once per dependency; a
    request without an ``Authorization`` header is decided without I/O.
    """
    header = request.headers.get("authorization")
    if header is None:
        return ctx.authorize(None, scope)
    return await run_in_threadpool(ctx.authorize, header, scope)


def read_session(ctx: AppContext = Depends(app_context)) -> Iterator[Session]:
    """A ledger session for a read-only route (closed afterwards, never committed)."""
    with ctx.deps.session_factory() as session:
        yield session


async def reader(
    request: Request,
    ctx: AppContext = Depends(app_context),
    _creds: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> Principal:
    """The caller of a read route (anonymous when reads are open and no key was sent)."""
    return await _authorize(ctx, request, "read")


async def administrator(
    request: Request,
    ctx: AppContext = Depends(app_context),
    _creds: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> Principal:
    """The caller of an admin route (retraction): a key with the ``admin`` scope."""
    return await _authorize(ctx, request, "admin")


async def curator(
    request: Request,
    ctx: AppContext = Depends(app_context),
    _creds: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> Principal:
    """The caller of a review route (resolving a dispute): a key with the ``curate`` scope."""
    return await _authorize(ctx, request, "curate")


async def ingester(
    request: Request,
    ctx: AppContext = Depends(app_context),
    _creds: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> Principal:
    """The caller of an ingest route: a key with the ``ingest`` scope."""
    return await _authorize(ctx, request, "ingest")
