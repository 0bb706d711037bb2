"""Rendering the web UI's templates: one Jinja2 environment (autoescaping on), one ``render``.

Every UI page is rendered with the visitor (``ui``: who is logged in, their scopes, the session's CSRF
token for forms) and sent with :data:`api.security.UI_CONTENT_SECURITY_POLICY`, which allows the UI's
own script file and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.reads import ui_href
from api.security import UI_CONTENT_SECURITY_POLICY

if TYPE_CHECKING:  # pragma: no cover
    from api.ui_auth import Visitor

TEMPLATES = Path(__file__).parent / "templates"


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "svg"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["page_href"] = ui_href
    env.filters["urlq"] = lambda s: quote(str(s), safe="")
    env.filters["pathq"] = lambda s: quote(str(s))
    env.filters["short"] = lambda s, n=12: str(s)[:n]
    return env


ENV = _env()


def render(name: str, ui: Visitor, *, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render a template for ``ui`` (the visitor) to an HTML response under the UI's policy."""
    body = ENV.get_template(name).render(ui=ui, **values)
    return HTMLResponse(body, status_code=status_code, headers={"Content-Security-Policy": UI_CONTENT_SECURITY_POLICY})
