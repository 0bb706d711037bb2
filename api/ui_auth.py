"""Who is using the web UI, and logging in and out (``/ui/login``, ``/ui/logout``).

A visitor is one of:

- logged in: the session cookie (:mod:`api.session`) names a key that is still valid; the visitor has
  that key's scopes now, and is the only kind shown forms (upload, retract, resolve);
- a client sending ``Authorization: Bearer`` (scripts, tests): reads the UI like the REST API, no forms;
- anonymous, when reads are open.

On a closed wiki anyone else is :class:`api.errors.LoginRequired`: a browser's page request is
redirected to the login form. Every form post (:func:`check_form`) needs the login, the session's
CSRF token and the scope; the login form itself is protected by the token of a session issued with
the form (before login), so another site cannot log a browser in under a key of its choosing.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, lookup_key
from api.context import AppContext, app_context
from api.errors import BadRequest, Forbidden, LoginRequired, Unauthorized
from api.session import (
    COOKIE,
    COOKIE_PATH,
    CSRF_FIELD,
    SessionCodec,
    UiSession,
    csrf_ok,
    key_hash_of,
    session_principal,
)
from api.ui_render import render

router = APIRouter(prefix="/ui", include_in_schema=False)

MAX_FORM_FIELD = 4096


@dataclass(frozen=True)
class Visitor:
    """The person (or client) behind a UI request.

    Attributes:
        principal: the caller as the API's auth sees it (anonymous on an open wiki).
        session: the valid session cookie, logged in or not (None: no cookie, or a bad one).
        logged_in: the principal comes from the session's login.
    """

    principal: Principal
    session: UiSession | None = None
    logged_in: bool = False

    def can(self, scope: str) -> bool:
        """Whether forms needing ``scope`` are shown (and accepted) for this visitor."""
        return self.logged_in and self.principal.has(scope)

    @property
    def csrf(self) -> str:
        """The token every form carries (empty without a session)."""
        return self.session.csrf if self.session is not None else ""


def codec_of(ctx: AppContext) -> SessionCodec:
    """The app's session codec (the app factory always sets one)."""
    if ctx.sessions is None:  # pragma: no cover - create_app always builds one
        raise RuntimeError("the app has no session codec")
    return ctx.sessions


def _session_principal(ctx: AppContext, session: UiSession) -> Principal | None:
    with ctx.deps.session_factory() as db:
        principal = session_principal(db, codec_of(ctx), session)
    if principal is not None and principal.key_id is not None and ctx.usage is not None:
        ctx.usage.touch(principal.key_id)
    return principal


async def ui_visitor(request: Request, ctx: AppContext = Depends(app_context)) -> Visitor:
    """The visitor of a UI page (dependency of every UI route but the login form).

    Raises:
        LoginRequired: reads are closed and there is neither a valid login nor a read key.
        Unauthorized, Forbidden: a bearer key that is wrong or lacks ``read``.
    """
    session = codec_of(ctx).loads(request.cookies.get(COOKIE))
    header = request.headers.get("authorization")
    if header is not None:
        return Visitor(await run_in_threadpool(ctx.authorize, header, "read"), session)
    if session is not None and session.logged_in:
        principal = await run_in_threadpool(_session_principal, ctx, session)
        if principal is not None:
            return Visitor(principal, session, logged_in=True)
        session = None  # revoked key, or a key with a new secret: logged out
    try:
        return Visitor(ctx.authorize(None, "read"), session)
    except Unauthorized as exc:
        raise LoginRequired("log in with an API key to read this wiki", headers=exc.headers) from None


def check_form(visitor: Visitor, token: str | None, scope: str) -> Principal:
    """Accept a UI form post: a login, the session's CSRF token, and ``scope``.

    Raises:
        LoginRequired: not logged in (or the login ended).
        Forbidden: the CSRF token is missing or wrong, or the key lacks ``scope``.
    """
    if not visitor.logged_in:
        raise LoginRequired("log in to do this")
    if not csrf_ok(visitor.session, token):
        raise Forbidden("the form's CSRF token is missing or wrong: reload the page and try again")
    if not visitor.principal.has(scope):
        raise Forbidden(f"key {visitor.principal.name!r} lacks the {scope!r} scope")
    return visitor.principal


def safe_next(target: str | None) -> str:
    """Where to go after login: a path inside the UI, never another site (``//host``, ``/\\host``)."""
    if not target or not target.startswith("/ui") or target.startswith(("//", "/\\")) or "\\" in target:
        return "/ui"
    if any(ord(c) < 32 for c in target):
        return "/ui"
    return target


def set_session_cookie(response: Response, request: Request, codec: SessionCodec, session: UiSession) -> None:
    """Attach ``session`` as the HttpOnly, SameSite=Lax cookie (Secure over https)."""
    response.set_cookie(
        COOKIE,
        codec.dumps(session),
        max_age=codec.max_age_s,
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


async def form_fields(request: Request) -> dict[str, str]:
    """A url-encoded form's text fields (each at most ``MAX_FORM_FIELD`` characters).

    Raises:
        BadRequest: a field is longer than that.
    """
    form = await request.form(max_files=0, max_fields=16)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if any(len(v) > MAX_FORM_FIELD for v in fields.values()):
        raise BadRequest(f"a form field is longer than {MAX_FORM_FIELD} characters")
    return fields


def _login_page(visitor: Visitor, next_url: str, *, error: str = "", status_code: int = 200) -> HTMLResponse:
    return render("login.html", visitor, status_code=status_code, title="Log in", next=next_url, error=error)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/ui", ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    codec = codec_of(ctx)
    session = codec.loads(request.cookies.get(COOKIE))
    visitor = Visitor(ctx.authorize(None, "read") if ctx.deps.open_reads else _nobody(), session)
    if session is not None and session.logged_in:
        principal = await run_in_threadpool(_session_principal, ctx, session)
        if principal is not None:
            return _login_page(Visitor(principal, session, logged_in=True), safe_next(next))
    fresh = session if session is not None and not session.logged_in else codec.new()
    response = _login_page(Visitor(visitor.principal, fresh), safe_next(next))
    if fresh is not session:
        set_session_cookie(response, request, codec, fresh)
    return response


def _nobody() -> Principal:
    return Principal(name="nobody", scopes=frozenset(), anonymous=True)


def _check_key(ctx: AppContext, secret: str) -> tuple[Principal, str] | None:
    with ctx.deps.session_factory() as db:
        principal = lookup_key(db, secret)
        if principal is None or principal.key_id is None:
            return None
        key_hash = key_hash_of(db, principal.key_id)
    return (principal, key_hash) if key_hash is not None else None


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, ctx: AppContext = Depends(app_context)) -> Response:
    codec = codec_of(ctx)
    session = codec.loads(request.cookies.get(COOKIE))
    fields = await form_fields(request)
    next_url = safe_next(fields.get("next"))
    if not csrf_ok(session, fields.get(CSRF_FIELD)):
        raise Forbidden("the login form's CSRF token is missing or wrong (are cookies allowed?): reload the form")
    secret = fields.get("key", "").strip()
    found = await run_in_threadpool(_check_key, ctx, secret) if secret else None
    if found is None:
        visitor = Visitor(_nobody(), session)
        return _login_page(visitor, next_url, error="Unknown or revoked API key.", status_code=401)
    principal, key_hash = found
    response = RedirectResponse(next_url, status_code=303)
    set_session_cookie(response, request, codec, codec.new(principal.key_id, key_hash))
    return response


@router.post("/logout")
async def logout(request: Request, ctx: AppContext = Depends(app_context)) -> Response:
    session = codec_of(ctx).loads(request.cookies.get(COOKIE))
    fields = await form_fields(request)
    if session is not None and session.logged_in and not csrf_ok(session, fields.get(CSRF_FIELD)):
        raise Forbidden("the form's CSRF token is missing or wrong: reload the page and try again")
    response = RedirectResponse("/ui/login", status_code=303)  # no live session: logged out already
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, secure=request.url.scheme == "https", httponly=True, samesite="lax"
    )
    return response
