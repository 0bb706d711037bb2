"""``GET /lint``: the health report of ``lore lint --json``, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.context import AppContext, app_context, reader
from api.routes.pages import ERRORS
from store.db import read_only
from synth.lint_service import lint_wiki, summarise

router = APIRouter(tags=["health"], dependencies=[Depends(reader)], responses=ERRORS)


class FindingOut(BaseModel):
    """One problem on one page."""

    severity: Literal["error", "warning"]
    kind: str = Field(description="What is wrong, e.g. broken-link, stale-page, catalog-drift (docs/operations.md).")
    path: str = Field(description="The page it is on (repository path).")
    detail: str


class LintOut(BaseModel):
    """The lint report: counts and every finding (errors first), the same JSON as ``lore lint --json``."""

    errors: int
    warnings: int
    by_kind: dict[str, dict[str, int]] = Field(description="severity -> kind -> count.")
    findings: list[FindingOut]


def lint_session(ctx: AppContext = Depends(app_context)) -> Iterator[Session]:
    """A session on a read-only engine (deferred transaction on SQLite), closed afterwards, never committed."""
    bind = ctx.deps.session_factory.kw.get("bind")
    if isinstance(bind, Engine):
        with Session(read_only(bind)) as session:
            yield session
    else:  # a factory bound otherwise: its own sessions (the lint only reads)
        with ctx.deps.session_factory() as session:
            yield session


@router.get("/lint", response_model=LintOut, summary="Wiki health: the lint report")
def get_lint(
    min_claims: int = Query(2, ge=0, le=1000, description="Entity pages citing fewer claims are stubs."),
    dispute_days: int = Query(30, ge=0, le=36500, description="Disputes open longer than this are reported."),
    ctx: AppContext = Depends(app_context),
    session: Session = Depends(lint_session),
) -> LintOut:
    """Check every page at HEAD against itself and the ledger: citations, links, index, stale pages,
    catalog drift, old disputes, edits inside machine regions. Errors in the wiki are reported in the
    body (``errors`` > 0), not as an HTTP error."""
    findings = lint_wiki(session, ctx.deps.store, min_claims=min_claims, dispute_days=dispute_days)
    return LintOut.model_validate(summarise(findings))
