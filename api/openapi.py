"""The OpenAPI document as the handlers really behave, and the API explorer at ``/docs``.

- **operationIds** are the route functions' names (``page_history``, ``list_sources``), not FastAPI's
  ``page_history_pages__path__history_get``; :func:`operation_id` refuses a name used twice.
- **422** is documented as what :func:`api.errors.handle_error` returns, ``{"error": "ValidationError",
  "detail": "<where>: <what>"}`` (:class:`api.schemas.ErrorOut`), not FastAPI's ``HTTPValidationError``.
- Every operation documents **503** ``ErrorOut``: any request can meet a busy or unreachable database.
- **Swagger UI** is served from the ``fastapi-offline`` package's vendored files (nothing from a CDN)
  by a page without inline script, under its own Content-Security-Policy (:data:`DOCS_CSP`): scripts
  from this origin only; Swagger UI sets ``style`` attributes, so that route alone allows inline styles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from api.schemas import ErrorOut

SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"

DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; "
    "font-src 'self'; "
    "connect-src 'self'; "
    "form-action 'self'; "
    "base-uri 'none'; "
    "frame-ancestors 'none'"
)

# Relative URLs throughout: the page works under a proxy's root path (``LORE_API__ROOT_PATH``).
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lore API</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" href="docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="openapi.json"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="static/swagger-init.js"></script>
</body>
</html>
"""

VALIDATION_DESCRIPTION = (
    "The request does not match the operation's parameters or body; `detail` names the first bad field "
    "(`query.limit: Input should be less than or equal to 500`)."
)
UNAVAILABLE_DESCRIPTION = "The database is busy or unreachable (retry after `Retry-After` seconds)."


def operation_id(route: APIRoute) -> str:
    """The operationId of ``route``: its function's name."""
    return route.name


def _check_unique(app: FastAPI) -> None:
    seen: dict[str, str] = {}
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            name = operation_id(route)
            if name in seen and seen[name] != route.path:
                raise RuntimeError(f"operationId {name!r} is used by {seen[name]} and {route.path}")
            seen.setdefault(name, route.path)


def _error_ref(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the error responses the handlers really send (cached on the app)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    _check_unique(app)
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorOut", ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}"))
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _error_ref(VALIDATION_DESCRIPTION)
            responses.setdefault("503", _error_ref(UNAVAILABLE_DESCRIPTION))
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)  # nothing refers to them any more
    app.openapi_schema = doc
    return doc


def docs_router() -> APIRouter:
    """``GET /docs``: Swagger UI over ``/openapi.json``."""
    router = APIRouter()

    @router.get("/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE, headers={"Content-Security-Policy": DOCS_CSP})

    return router


def install_docs(app: FastAPI) -> None:
    """Serve the explorer at ``/docs`` (its files at ``/docs/assets``) and the corrected OpenAPI document."""
    app.include_router(docs_router())
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_DIR), name="docs-assets")
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
