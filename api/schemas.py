"""Pydantic models of every API response (they make the OpenAPI document complete).

Most are built from the dataclasses of :mod:`store.queries` with ``model_validate(obj,
from_attributes=True)``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Model(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @field_validator("*", mode="after")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        # SQLite hands timestamps back without their zone; they are UTC (store.models.utcnow), and an
        # RFC 3339 date-time, as the OpenAPI document promises, carries its offset.
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class ErrorOut(_Model):
    """Every error response: the error's class name and a sentence saying what went wrong."""

    error: str = Field(description="Class name of the error, e.g. NotFound, Unauthorized, PageConflict.")
    detail: str = Field(description="What went wrong, for a person or an agent.")


class CitationOut(_Model):
    """What a footnote ``[^claim_id]`` stands for."""

    claim_id: str | None = Field(description="The claim's id (its footnote label); None for a raw source excerpt.")
    text: str = Field(description="The claim as stated in the ledger.")
    quote: str = Field(description="Verbatim quote from the source that supports the claim.")
    status: str = Field(description="active, superseded, disputed or retracted.")
    source_id: str = Field(description="sha256 of the source's bytes.")
    source_title: str
    source_slug: str
    source_page: str = Field(description="Repository path of the source's summary page.")
    source_status: str


class ClaimOut(_Model):
    id: str
    text: str
    quote: str
    status: str
    entity_id: int
    entity_name: str
    entity_page: str
    source_id: str
    source_title: str
    valid_from: str | None = None
    valid_to: str | None = None
    superseded_by: str | None = None
    observed_at: datetime | None = None


class PageSummaryOut(_Model):
    path: str = Field(description="Repository path, e.g. wiki/systems/kubernetes.md.")
    title: str
    type: str = Field(description="Folder below wiki/: an entity type, 'sources', or 'catalog' for top-level pages.")


class PageListOut(_Model):
    pages: list[PageSummaryOut]
    total: int
    commit: str | None = Field(description="The commit the list was read at.")


class PageOut(_Model):
    """A page as JSON: its markdown, front matter, claims and the citations of its footnotes."""

    path: str
    title: str
    type: str
    version: str = Field(description="Blob id of the page at HEAD (its optimistic-lock version).")
    commit: str | None
    front_matter: dict[str, Any]
    markdown: str = Field(description="The page body without front matter.")
    claims: list[ClaimOut] = Field(description="Ledger claims about the page's entity (or made by its source).")
    citations: dict[str, CitationOut] = Field(description="Footnote label (claim id) -> citation.")


class CommitOut(_Model):
    id: str
    parents: list[str]
    author: str
    timestamp: datetime
    message: str
    trailers: dict[str, list[str]] = Field(description="Commit trailers such as Lore-Source and Lore-Job.")
    paths: list[str] = Field(description="Paths the commit changed.")


class HistoryOut(_Model):
    path: str
    commits: list[CommitOut]


class DiffOut(_Model):
    path: str
    a: str
    b: str
    diff: str = Field(description="Unified diff of the page from a to b (empty when equal).")


class LinkOut(_Model):
    relation: str
    name: str
    page: str


class EntityOut(_Model):
    id: int
    name: str
    type: str
    slug: str
    description: str
    page_path: str
    aliases: list[str]
    claim_counts: dict[str, int] = Field(description="Number of claims per status.")
    links_out: list[LinkOut]
    links_in: list[LinkOut]
    claims: list[ClaimOut] = Field(description="Active and disputed claims.")


class SourceOut(_Model):
    id: str
    slug: str
    title: str
    origin: str = Field(description="The name it arrived under (metadata only).")
    media_type: str
    size: int
    status: str = Field(description="pending, extracting, extracted, done, failed, retracted or replaced.")
    error: str | None
    warning: str | None = Field(
        None, description="Set when the source is done but added no facts (e.g. no claim passed grounding)."
    )
    version: int
    previous_id: str | None
    claims_rejected: int = Field(description="Claims dropped by the grounding check (quote not in the source).")
    created_at: datetime
    updated_at: datetime
    page_path: str


class SourceListOut(_Model):
    sources: list[SourceOut]
    total: int


class JobOut(_Model):
    id: int
    kind: str
    state: str
    attempts: int
    max_attempts: int
    last_error: str | None
    updated_at: datetime


class SourceDetailOut(_Model):
    source: SourceOut
    claims: list[ClaimOut]
    pages_touched: list[str]
    jobs: list[JobOut]
    errors: list[str] = Field(description="The source's error and every job error recorded for it.")


class UploadOut(_Model):
    """What intake did with an upload."""

    source_id: str | None = Field(description="sha256 of the bytes (None when refused before hashing).")
    status: str = Field(description="The source's status after intake (pending when extraction was enqueued).")
    duplicate: bool = Field(description="True when these exact bytes were already known: nothing new happens.")
    job_ids: list[int] = Field(description="Jobs enqueued for this source.")
    detail: str = ""


class RetractOut(_Model):
    """A retraction that was accepted; it runs as a job and publishes one commit."""

    source_id: str = Field(description="sha256 of the retracted source.")
    job_id: int = Field(description="The retraction job; follow the source's status at GET /sources/{id}.")
    status: str = Field(description="The job's state when it was accepted (queued, running or done).")


class ContradictionOut(_Model):
    id: int
    status: str
    reason: str
    entity_name: str
    entity_page: str
    claim_a: ClaimOut
    claim_b: ClaimOut
    created_at: datetime
    decision: Literal["keep", "both_valid", "dismiss"] | None = Field(
        None, description="A reviewer's decision; None while open or when a side was retracted."
    )
    kept_claim: str | None = Field(None, description="The claim kept (decision `keep`).")
    note: str | None = Field(None, description="Why, in the reviewer's words.")
    resolved_by: str | None = Field(None, description="The reviewer: an API key's name or a user.")
    resolved_at: datetime | None = None


class ContradictionListOut(_Model):
    contradictions: list[ContradictionOut]
    total: int = Field(0, description="Disputes matching the filters (all pages of results).")


class ResolveIn(_Model):
    """A reviewer's decision on an open dispute."""

    decision: Literal["keep", "both_valid", "dismiss"] = Field(
        description="`keep`: one side is right (name it in `claim`); `both_valid`: both hold; `dismiss`: "
        "the claims do not really disagree."
    )
    claim: str | None = Field(None, max_length=40, description="The claim to keep (decision `keep` only).")
    note: str = Field("", max_length=2000, description="Why; shown on the page and in wiki/contradictions.md.")


class ResolveOut(_Model):
    dispute: ContradictionOut
    changed: dict[str, str] = Field(description="Claims whose status changed: claim id -> new status.")
    job_ids: list[int] = Field(description="The render job that shows the decision on the entity's page.")


class ChangesOut(_Model):
    commits: list[CommitOut]


class HitOut(_Model):
    kind: Literal["section", "claim", "source"]
    ref: str = Field(description="Page path (section), claim id (claim) or source id (source).")
    title: str
    text: str
    score: float
    page: str | None = Field(description="Page to read for more (None for raw source chunks of unknown pages).")
    citations: list[CitationOut]
    tier: int = Field(
        0, description="Where the hit came from: 1 the page of the entity the question names, 2 page sections "
        "and claims, 3 raw source chunks."
    )


class QueryOut(_Model):
    """An answer to a question: page sections, claims and source chunks ranked together (or one tier alone)."""

    query: str
    tier: int = Field(
        description="Where the first hit came from: 1 an entity's page, 2 page sections and claims, 3 raw source "
        "chunks, 0 no answer."
    )
    answered_by: Literal["entity", "pages", "sources", "none"]
    entity: str | None = Field(description="The entity named in the question (tier 1).")
    hits: list[HitOut]


class HealthOut(_Model):
    status: Literal["ok", "degraded", "down"]
    checks: dict[str, str] = Field(description="Each dependency: ok, degraded, or an error message.")
