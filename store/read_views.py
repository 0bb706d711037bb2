"""What the read side returns: plain frozen dataclasses built by :mod:`store.queries` from ledger rows.

Callers can hold them after the session closed and serialize them as they like (the API's Pydantic
models read them with ``from_attributes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Citation:
    """What a footnote ``[^claim_id]`` stands for: the claim, its source and the verbatim quote.

    For a raw source chunk (no claim) ``claim_id`` is None, ``text`` is empty and ``quote`` is the chunk.
    """

    claim_id: str | None
    text: str
    quote: str
    status: str
    source_id: str
    source_title: str
    source_slug: str
    source_page: str
    source_status: str


@dataclass(frozen=True)
class ClaimView:
    """One claim with its entity and citation."""

    id: str
    text: str
    quote: str
    status: str
    entity_id: int
    entity_name: str
    entity_page: str
    source_id: str
    source_title: str
    valid_from: str | None
    valid_to: str | None
    superseded_by: str | None
    observed_at: datetime | None


@dataclass(frozen=True)
class EntityView:
    id: int
    name: str
    type: str
    slug: str
    description: str
    page_path: str
    aliases: tuple[str, ...]
    claim_counts: dict[str, int]
    links_out: tuple[tuple[str, str, str], ...]  # (relation, name, page path)
    links_in: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class SourceView:
    id: str
    slug: str
    title: str
    origin: str
    media_type: str
    size: int
    status: str
    error: str | None
    version: int
    previous_id: str | None
    claims_rejected: int
    created_at: datetime
    updated_at: datetime
    page_path: str


@dataclass(frozen=True)
class JobView:
    id: int
    kind: str
    state: str
    attempts: int
    max_attempts: int
    last_error: str | None
    updated_at: datetime


@dataclass(frozen=True)
class SourceDetail:
    source: SourceView
    claims: tuple[ClaimView, ...]
    pages_touched: tuple[str, ...]
    jobs: tuple[JobView, ...]
    errors: tuple[str, ...]


@dataclass(frozen=True)
class ContradictionView:
    id: int
    status: str
    reason: str
    entity_name: str
    entity_page: str
    claim_a: ClaimView
    claim_b: ClaimView
    created_at: datetime
    decision: str | None = None
    kept_claim: str | None = None
    note: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class PageMeta:
    path: str
    title: str
    kind: str
    entity_id: int | None = None
    source_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
