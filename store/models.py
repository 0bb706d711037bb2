"""The ledger: SQLAlchemy 2 ORM models, all in one module to avoid import cycles.

Unique keys make every step idempotent (DESIGN section 2):

- a source is its content hash (``Source.id`` is the sha256 of the raw bytes);
- a claim is ``(entity, hash(source, normalized text))`` (``uq_claims_entity_key``);
- a job is its idempotency key (``Job.key``);
- a link is ``(from, to, relation, source)``; a contradiction is its claim pair;
- an index chunk is ``(kind, ref, ordinal)``.

Statuses are plain strings checked by constants here, so both SQLite and PostgreSQL accept them and
migrations never need an enum type change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


# --- statuses -------------------------------------------------------------------------------

SOURCE_STATUSES = ("pending", "extracting", "extracted", "done", "failed", "retracted", "replaced")
CLAIM_STATUSES = ("active", "duplicate", "superseded", "disputed", "retracted")
JOB_STATES = ("queued", "running", "done", "failed", "dead")
JOB_KINDS = ("extract", "render", "source_page", "catalog", "retract")
CONTRADICTION_STATUSES = ("open", "resolved")


class Source(Base):
    """One ingested document version. Its id is the sha256 of its raw bytes."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    # The file name or upload name it arrived under: metadata only, never used as a path.
    origin: Mapped[str] = mapped_column(String(1024))
    # Normalized origin used to recognise a new version of a known document.
    origin_key: Mapped[str] = mapped_column(String(1024), index=True)
    title: Mapped[str] = mapped_column(String(500), default="")
    media_type: Mapped[str] = mapped_column(String(100), default="text/plain")
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw_path: Mapped[str] = mapped_column(String(300), default="")  # raw/<slug>.<ext> in the repository
    text: Mapped[str | None] = mapped_column(Text, nullable=True)  # parsed text (markdown)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set on a source that finished without changing any entity page (e.g. no claim passed grounding):
    # it is still searchable and has its source page, but a person should know why it adds no facts.
    warning: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    previous_id: Mapped[str | None] = mapped_column(ForeignKey("sources.id"), nullable=True)
    claims_rejected: Mapped[int] = mapped_column(Integer, default=0)  # grounding check failures
    # grounding rejections by reason: {"quote": n, "value": n, "entity": n}
    rejections: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Entity(Base):
    """A thing pages are about. ``revision`` moves whenever its claims change."""

    __tablename__ = "entities"
    __table_args__ = (UniqueConstraint("type", "slug", name="uq_entities_type_slug"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    norm_name: Mapped[str] = mapped_column(String(300), index=True)
    type: Mapped[str] = mapped_column(String(40))  # systems, services, teams, people, concepts, events, ...
    slug: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    rendered_revision: Mapped[int] = mapped_column(Integer, default=-1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def page_path(self) -> str:
        return f"wiki/{self.type}/{self.slug}.md"


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("entity_id", "norm", name="uq_aliases_entity_norm"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(300))
    norm: Mapped[str] = mapped_column(String(300), index=True)


class Claim(Base):
    """An atomic, quoted statement about one entity from one source."""

    __tablename__ = "claims"
    __table_args__ = (
        UniqueConstraint("entity_id", "key", name="uq_claims_entity_key"),
        Index("ix_claims_entity_status", "entity_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # stable footnote key, e.g. c3f9a1b2c4d5
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"), index=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))  # sha256(source id + normalized text)
    text: Mapped[str] = mapped_column(Text)
    quote: Mapped[str] = mapped_column(Text)
    span_start: Mapped[int | None] = mapped_column(Integer, nullable=True)
    span_end: Mapped[int | None] = mapped_column(Integer, nullable=True)
    observed_at: Mapped[datetime] = mapped_column(default=utcnow)
    valid_from: Mapped[str | None] = mapped_column(String(40), nullable=True)  # as the source states it
    valid_to: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # fact slot (DESIGN section 1): what the claim answers, as the source words it, and its normal forms
    attribute: Mapped[str | None] = mapped_column(String(200), nullable=True)
    value: Mapped[str | None] = mapped_column(Text, nullable=True)
    as_of: Mapped[str | None] = mapped_column(String(40), nullable=True)
    attr_key: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    value_norm: Mapped[str | None] = mapped_column(String(500), nullable=True)
    value_type: Mapped[str | None] = mapped_column(String(20), nullable=True)  # date | number | name | text
    as_of_norm: Mapped[str | None] = mapped_column(String(40), nullable=True)
    match: Mapped[str | None] = mapped_column(String(20), nullable=True)  # how grounding found the quote
    status: Mapped[str] = mapped_column(String(20), default="active", index=True)
    superseded_by: Mapped[str | None] = mapped_column(ForeignKey("claims.id"), nullable=True)
    judged: Mapped[bool] = mapped_column(Boolean, default=False)  # compared against its neighbours yet?
    judgement: Mapped[str | None] = mapped_column(Text, nullable=True)  # the judge's reason
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Contradiction(Base):
    """Two claims about one entity that the judge found in dispute."""

    __tablename__ = "contradictions"
    __table_args__ = (UniqueConstraint("claim_a", "claim_b", name="uq_contradictions_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"), index=True)
    claim_a: Mapped[str] = mapped_column(ForeignKey("claims.id"))
    claim_b: Mapped[str] = mapped_column(ForeignKey("claims.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A person's review (``synth.disputes``): keep | both_valid | dismiss. Null when the dispute is open,
    # or ended because a side was retracted.
    decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    kept_claim: Mapped[str | None] = mapped_column(String(40), nullable=True)  # the side kept (keep)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)  # key name or user
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    review_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the render that showed it


class ClaimPair(Base):
    """A pair of claims the judge flow compared (DESIGN section 1), one row per (new, old) pair.

    ``kind`` is what code decided before any model call (``duplicate``, ``supersedes``, ``candidate``,
    ``lexical``); ``verdict`` is the final outcome (``duplicate | supersedes | disputes | unrelated``),
    null while a candidate waits for the model. ``invalid`` counts answers that could not be used for
    this pair; the pair is asked again on a later render until ``MAX_INVALID``.
    """

    __tablename__ = "claim_pairs"
    __table_args__ = (UniqueConstraint("claim_new", "claim_old", name="uq_claim_pairs_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"), index=True)
    claim_new: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    claim_old: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    verdict: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Link(Base):
    """A relation between two entities stated by a source."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("from_entity_id", "to_entity_id", "relation", "source_id", name="uq_links_edge"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"), index=True)
    to_entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"), index=True)
    relation: Mapped[str] = mapped_column(String(200))
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="active")


class Page(Base):
    """Render state of one page file; ``version`` is the optimistic lock on this row."""

    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(400), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # entity | source | catalog
    entity_id: Mapped[int | None] = mapped_column(ForeignKey("entities.id"), nullable=True, index=True)
    source_id: Mapped[str | None] = mapped_column(ForeignKey("sources.id"), nullable=True, index=True)
    title: Mapped[str] = mapped_column(String(500), default="")
    blob_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: absent at HEAD
    commit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rendered_revision: Mapped[int] = mapped_column(Integer, default=-1)
    prose_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # claim-set hash of the prose
    prose: Mapped[str | None] = mapped_column(Text, nullable=True)  # cached composed summary
    renders: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}


class Job(Base):
    """The truth about work: queue messages are only hints to look here."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    entity_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ModelCall(Base):
    """One request to a model server, whatever its outcome."""

    __tablename__ = "model_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(20), index=True)  # extract | resolve | judge | compose
    model: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(500))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(30))  # ok | repaired | invalid | transient | overflow | ...
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    source_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Chunk(Base):
    """A unit of the search index: a raw source chunk, a page section, or a claim."""

    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("kind", "ref", "ordinal", name="uq_chunks_kind_ref_ordinal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)  # source | section | claim
    ref: Mapped[str] = mapped_column(String(400), index=True)  # source id, page path, or claim id
    ordinal: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text)
    citations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class IndexState(Base):
    """Bookkeeping of the search index: what it was last brought up to."""

    __tablename__ = "index_state"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    commit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    embedder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    """An API key, stored as a hash; ``scopes`` is a space-separated subset of read, ingest, curate, admin.

    ``origin`` is ``config`` for a bootstrap key (``LORE_API__API_KEYS``: revoked at start-up once it
    leaves the configuration) and ``cli`` for one made by ``lore keys create``.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(100))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    origin: Mapped[str] = mapped_column(String(10), default="cli", server_default="config")
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
