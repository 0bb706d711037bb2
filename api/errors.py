"""Errors of the API layer, and the one handler that turns every domain error into a response.

::

    ApiError
    ├── NotFound          a page, source, entity or revision that does not exist       404
    ├── BadRequest        a well-formed request the domain cannot answer              400
    ├── Unauthorized      no API key, or a key that matches none                      401
    │   └── LoginRequired a web UI page or form that needs a login (a browser is sent to log in)
    ├── Forbidden         a valid key without the scope the route needs               403
    ├── PayloadTooLarge   an upload passed ``max_upload_bytes`` while streaming       413
    └── RateLimited       too many uploads from one key or client in a minute         429

Domain code raises these (or its own package's errors); it never raises ``HTTPException``.
:func:`install_error_handler` registers one handler that renders ``{"error": ClassName, "detail":
message}`` with the status found by walking the exception's class hierarchy in :data:`STATUS_BY_NAME`.
Errors of other packages are matched by class name, so a subclass added in another package gets the
status of its nearest listed ancestor without a change here.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.errors import IngestError
from search.errors import SearchError
from store.errors import StoreError
from synth.errors import SynthError
from wiki.errors import WikiError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base of the API's own errors; ``headers`` are added to the error response."""

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class NotFound(ApiError):
    """The thing asked for does not exist."""


class BadRequest(ApiError):
    """The request is well formed but cannot be answered (for example an unknown revision)."""


class Unauthorized(ApiError):
    """No API key, or an unknown or revoked one."""


class LoginRequired(Unauthorized):
    """A web UI request without a (valid) login where one is needed: a browser's page request is
    redirected to ``/ui/login``, anything else gets the 401 page."""


class Forbidden(ApiError):
    """The key is valid but lacks the scope the route needs."""


class PayloadTooLarge(ApiError):
    """The request body passed the configured size cap."""


class RateLimited(ApiError):
    """Too many requests of this kind from one key or client."""


#: Status per error class name; the first name found along the exception's MRO wins, so a
#: subclass may be listed to override its base.
STATUS_BY_NAME: dict[str, int] = {
    # api
    "NotFound": 404,
    "BadRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "PayloadTooLarge": 413,
    "RateLimited": 429,
    "ApiError": 400,
    # store
    "PageConflict": 409,
    "PageNotFound": 404,
    "RevisionNotFound": 404,
    "NotFoundError": 404,
    "InvalidPath": 400,
    "StoreError": 503,
    # search
    "EmbeddingUnavailable": 503,
    "IndexMismatch": 503,
    "SearchError": 503,
    # ingest
    "Refused": 422,
    "TooLarge": 413,
    "Unsupported": 415,
    "ParseFailed": 422,
    "IngestError": 422,
    # wiki
    "WikiError": 422,
    # synth
    "SourceNotFound": 404,
    "DisputeNotFound": 404,
    "DisputeClosed": 409,
    "InvalidDecision": 422,
    "ModelUnavailable": 503,
    "SynthError": 503,
    # infrastructure: a locked or unreachable database is worth retrying, not a bug
    "OperationalError": 503,
}


def status_for(exc: BaseException) -> int:
    """HTTP status for ``exc``: the first class of its MRO named in :data:`STATUS_BY_NAME`, else 500."""
    for cls in type(exc).__mro__:
        status = STATUS_BY_NAME.get(cls.__name__)
        if status is not None:
            return status
    return 500


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON body of an error response."""
    detail = getattr(exc, "detail", None) or getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return {"error": type(exc).__name__, "detail": str(detail)}


async def handle_error(request: Request, exc: Exception) -> Response:
    """The one handler: domain errors, validation errors and routing errors become ``{error, detail}``."""
    if isinstance(exc, RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        detail = f"{where}: {first.get('msg', 'invalid request')}" if where else str(first.get("msg", "invalid"))
        return JSONResponse({"error": "ValidationError", "detail": detail}, status_code=422)
    if isinstance(exc, StarletteHTTPException):
        name = "NotFound" if exc.status_code == 404 else "HTTPError"
        return JSONResponse(
            {"error": name, "detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )
    status = status_for(exc)
    if status >= 500:
        log.warning("request %s %s failed: %r", request.method, request.url.path, exc)
    headers = dict(getattr(exc, "headers", None) or {})
    if isinstance(exc, OperationalError):
        headers.setdefault("Retry-After", "1")
    body = error_body(exc)
    if isinstance(exc, OperationalError):
        body["detail"] = "the database is busy or unreachable; retry shortly"  # no SQL in responses
    if request.url.path.startswith("/ui"):
        browser_get = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        if isinstance(exc, LoginRequired) and browser_get:
            wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/ui/login?next=" + quote(wanted, safe=""), status_code=303)
        return HTMLResponse(_error_page(status, body), status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def _error_page(status: int, body: dict[str, Any]) -> str:
    """The web UI's rendering of an error body (escaped; same information as the JSON)."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Error</title>'
        '<link rel="stylesheet" href="/static/lore.css"></head><body><main>'
        f"<h1>{status} {escape(body['error'])}</h1><p>{escape(body['detail'])}</p>"
        + ('<p><a href="/ui/login">Log in</a></p>' if status == 401 else "")
        + '<p><a href="/ui">Back to the catalog</a></p></main></body></html>'
    )


def install_error_handler(app: FastAPI) -> None:
    """Register :func:`handle_error` for every domain error base, validation and routing errors."""
    for cls in (
        ApiError,
        StoreError,
        SearchError,
        IngestError,
        WikiError,
        SynthError,
        OperationalError,
        RequestValidationError,
        StarletteHTTPException,
    ):
        app.add_exception_handler(cls, handle_error)  # type: ignore[arg-type]
