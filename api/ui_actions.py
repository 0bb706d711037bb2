"""The web UI's forms that change the wiki: upload a document, retract a source, resolve a dispute.

Each form is shown only to a login whose key has the scope (``ingest``, ``admin``, ``curate``) and
each post is checked again by :func:`api.ui_auth.check_form` (login, CSRF token, scope). The work is
the API's own: :func:`api.intake.submit_document` for an upload (the body streamed and size-capped
by :func:`api.uploads.read_upload`, the per-key rate limit applied), :mod:`api.writes` for the rest.
Every post answers ``303 See Other`` to the page that shows the outcome: an upload's source page,
which refreshes itself until the source is done or failed.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.context import AppContext, app_context
from api.errors import BadRequest, LoginRequired
from api.intake import submit_document
from api.schemas import ResolveIn
from api.session import CSRF_FIELD
from api.ui_auth import Visitor, check_form, form_fields, safe_next, ui_visitor
from api.ui_render import render
from api.uploads import read_upload
from api.writes import resolve, retract
from ingest.errors import Refused

router = APIRouter(prefix="/ui", include_in_schema=False)

DECISIONS = ("both_valid", "dismiss")


def _upload_page(ui: Visitor, ctx: AppContext, *, error: str = "", status_code: int = 200) -> HTMLResponse:
    return render(
        "upload.html", ui, status_code=status_code, title="Upload", error=error, max_bytes=ctx.deps.max_upload_bytes
    )


@router.get("/upload", response_class=HTMLResponse)
def upload_form(ui: Visitor = Depends(ui_visitor), ctx: AppContext = Depends(app_context)) -> HTMLResponse:
    return _upload_page(ui, ctx)


@router.post("/upload")
async def upload(
    request: Request, ui: Visitor = Depends(ui_visitor), ctx: AppContext = Depends(app_context)
) -> Response:
    if not ui.logged_in:
        raise LoginRequired("log in with a key that has the 'ingest' scope to upload")
    ctx.upload_limiter.hit(ui.principal.name)
    sent = await read_upload(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        ctx.deps.max_upload_bytes,
    )
    check_form(ui, sent.fields.get(CSRF_FIELD), "ingest")
    name = (sent.fields.get("name") or "").strip()[:1000] or sent.filename
    try:
        out, _created = await run_in_threadpool(submit_document, ctx.deps, sent.data, name)
    except Refused as exc:
        return _upload_page(ui, ctx, error=f"Refused: {exc}", status_code=422)
    if out.source_id is None:  # pragma: no cover - intake names a source whenever it does not refuse
        return _upload_page(ui, ctx, error=out.detail, status_code=422)
    note = "known" if out.duplicate else "new"
    return RedirectResponse(f"/ui/sources/{out.source_id}?uploaded={note}", status_code=303)


@router.get("/sources/{source_id}/retract", response_class=HTMLResponse)
def retract_confirm(
    source_id: str, ui: Visitor = Depends(ui_visitor), ctx: AppContext = Depends(app_context)
) -> HTMLResponse:
    detail = ctx.reads.source(source_id)
    return render("retract.html", ui, title=f"Retract {detail.source.title}", d=detail)


@router.post("/sources/{source_id}/retract")
async def retract_source(
    request: Request, source_id: str, ui: Visitor = Depends(ui_visitor), ctx: AppContext = Depends(app_context)
) -> Response:
    if not ui.logged_in:
        raise LoginRequired("log in with a key that has the 'admin' scope to retract")
    fields = await form_fields(request)
    check_form(ui, fields.get(CSRF_FIELD), "admin")
    detail = ctx.reads.source(source_id)  # NotFound before anything is asked for
    await run_in_threadpool(retract, ctx.deps, detail.source.id)
    return RedirectResponse(f"/ui/sources/{detail.source.id}?retracting=1", status_code=303)


def decision_of(choice: str) -> tuple[str, str | None]:
    """A resolve form's ``choice`` as ``(decision, claim)``: ``keep:<claim id>``, ``both_valid``, ``dismiss``.

    Raises:
        BadRequest: no choice, or an unknown one.
    """
    if choice.startswith("keep:") and len(choice) > 5:
        return "keep", choice[5:]
    if choice in DECISIONS:
        return choice, None
    raise BadRequest("choose which claim to keep, both valid, or dismiss")


@router.post("/contradictions/{dispute_id}/resolve")
async def resolve_dispute(
    request: Request,
    dispute_id: int = Path(..., ge=1, le=2**62),
    ui: Visitor = Depends(ui_visitor),
    ctx: AppContext = Depends(app_context),
) -> Response:
    if not ui.logged_in:
        raise LoginRequired("log in with a key that has the 'curate' scope to resolve disputes")
    fields = await form_fields(request)
    principal = check_form(ui, fields.get(CSRF_FIELD), "curate")
    decision, claim = decision_of(fields.get("choice", ""))
    try:
        body = ResolveIn(decision=decision, claim=claim, note=fields.get("note", "").strip())  # type: ignore[arg-type]
    except ValidationError as exc:
        raise BadRequest(f"the decision is not valid: {exc.errors()[0]['msg']}") from None
    await run_in_threadpool(resolve, ctx.deps, dispute_id, body, principal.name)
    back = safe_next(fields.get("back")) if fields.get("back") else f"/ui/contradictions#dispute-{dispute_id}"
    return RedirectResponse(back, status_code=303)
