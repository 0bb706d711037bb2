"""``POST /sources``: upload a document (streamed, size-capped, rate-limited, ``ingest`` scope)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import Principal
from api.context import AppContext, administrator, app_context, ingester
from api.intake import submit_document
from api.schemas import ErrorOut, RetractOut, UploadOut
from api.uploads import read_upload
from api.writes import retract

router = APIRouter(tags=["sources"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The document."},
                        "name": {
                            "type": "string",
                            "maxLength": 1000,
                            "description": "Name to record instead of the file's own (metadata only).",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/sources",
    status_code=202,
    response_model=UploadOut,
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {"model": UploadOut, "description": "Known content (nothing new) or a document that failed to parse."},
        400: {"model": ErrorOut, "description": "Not a multipart form with a 'file' part."},
        401: {"model": ErrorOut, "description": "No valid API key."},
        403: {"model": ErrorOut, "description": "The key lacks the ingest scope."},
        413: {"model": ErrorOut, "description": "The upload passed the size limit (refused while streaming)."},
        422: {"model": ErrorOut, "description": "Intake refused the document (for example an empty file)."},
        429: {"model": ErrorOut, "description": "Too many uploads in the last minute; see Retry-After."},
    },
    summary="Upload a document",
)
async def upload_source(
    request: Request,
    principal: Principal = Depends(ingester),
    ctx: AppContext = Depends(app_context),
) -> JSONResponse:
    """Upload a document as ``multipart/form-data`` (field ``file``); extraction is enqueued.

    The body is refused with 413 as soon as it passes the size limit; uploads are rate-limited per key.
    Answers 202 for a new source (or new version), 200 when the bytes are already known or could not
    be parsed (the source then has status ``failed`` and says why).
    """
    client = request.client.host if request.client else "unknown"
    ctx.upload_limiter.hit(principal.name if not principal.anonymous else f"addr:{client}")
    upload = await read_upload(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        ctx.deps.max_upload_bytes,
    )
    name = (upload.fields.get("name") or "").strip() or upload.filename
    out, created = await run_in_threadpool(submit_document, ctx.deps, upload.data, name)
    return JSONResponse(out.model_dump(), status_code=202 if created else 200)


@router.delete(
    "/sources/{source_id}",
    status_code=202,
    response_model=RetractOut,
    responses={
        401: {"model": ErrorOut, "description": "No valid API key."},
        403: {"model": ErrorOut, "description": "The key lacks the admin scope."},
        404: {"model": ErrorOut, "description": "No source with this sha256."},
    },
    summary="Retract a source",
)
async def retract_source(
    source_id: str,
    principal: Principal = Depends(administrator),
    ctx: AppContext = Depends(app_context),
) -> RetractOut:
    """Retract a source: its claims leave every page (one commit), claims it had superseded become active
    again, and its raw file leaves the tree (it stays in history). Runs as a job; idempotent."""
    return await run_in_threadpool(retract, ctx.deps, source_id)
