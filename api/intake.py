"""Submitting a document from the API or an MCP tool: one unit of work through the intake service,
then the new jobs are dispatched (enqueue after commit)."""

from __future__ import annotations

from api.deps import ApiDeps
from api.schemas import UploadOut
from ingest.errors import Refused
from ingest.service import intake_bytes
from store.db import unit_of_work
from store.models import Source


def submit_document(deps: ApiDeps, data: bytes, name: str) -> tuple[UploadOut, bool]:
    """Take in one document and dispatch its jobs after the transaction committed.

    Args:
        deps: the API's collaborators (session factory, store, intake limits, dispatcher).
        data: the document's bytes.
        name: the name it arrived under (metadata only; never a path).

    Returns:
        The outcome, and True when a new source (or a new version) was created.

    Raises:
        Refused: intake refused the document (empty, too large ...): nothing was stored.
        StoreError: the git store failed; nothing was committed to the ledger.
    """
    with unit_of_work(deps.session_factory) as session:
        result = intake_bytes(
            session,
            deps.store,
            data,
            name,
            max_bytes=min(deps.intake.max_bytes, deps.max_upload_bytes),
            parser_timeout_s=deps.intake.parser_timeout_s,
            parser_memory_mb=deps.intake.parser_memory_mb,
        )
        status = result.status
        if result.source_id is not None:
            source = session.get(Source, result.source_id)
            if source is not None:
                status = source.status
    if result.status == "refused":
        raise Refused(result.reason or "the document was refused")
    if result.job_ids:
        deps.dispatch(list(result.job_ids))
    created = result.status in ("new", "new_version")
    out = UploadOut(
        source_id=result.source_id,
        status=status,
        duplicate=result.status == "known",
        job_ids=list(result.job_ids),
        detail=result.reason or result.status,
    )
    return out, created
