"""Turning pages into search chunks, and rebuilding the whole search index from git and the ledger.

A page becomes one ``section`` chunk per heading (the text under it, as plain text, with the claim ids
its footnotes cite) plus one ``claim`` chunk per active claim of the page's entity. Raw source text
becomes ``source`` chunks. Chunk identity is ``(kind, ref, ordinal)``: a section is ``(section, page
path, n)``, a claim ``(claim, claim id, 0)``, a source chunk ``(source, source id, n)``; every chunk
carries its citations (claim ids, page, source id and title) so a hit can be shown with its evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from search.index import ChunkInput, SearchIndex
from search.text import chunk_text
from store.git_store import GitStore
from store.models import Chunk, Claim, Entity, Source
from wiki.markdown import REF_MARK, text_units
from wiki.page import parse_page

log = logging.getLogger(__name__)

SECTION, CLAIM, SOURCE = "section", "claim", "source"
PAGE_KINDS = (SECTION, CLAIM)
#: Estimated tokens per raw source chunk, and tokens repeated from the previous chunk.
SOURCE_CHUNK_TOKENS = 200
SOURCE_CHUNK_OVERLAP = 30
#: Sources whose text no longer counts.
RETIRED = ("retracted", "replaced")


@dataclass(frozen=True)
class Section:
    """One heading's part of a page, as plain text."""

    ordinal: int
    heading: str
    text: str
    claim_ids: tuple[str, ...]


@dataclass(frozen=True)
class ChunkSpec:
    """A chunk to put in the index."""

    kind: str
    ref: str
    ordinal: int
    title: str
    text: str
    citations: dict[str, Any]


def page_body(text: str) -> tuple[dict[Any, Any], str]:
    """Split a page file into its front matter mapping and its markdown body."""
    doc = parse_page(text)
    body = text[len(doc.front_matter_raw) :] if doc.front_matter_raw else text
    return (doc.meta if isinstance(doc.meta, dict) else {}), body


def page_sections(body: str, title: str) -> list[Section]:
    """Split a page body at its headings into plain-text sections (footnote definitions left out).

    Text before the first heading belongs to a section headed by the page title. Sections with no text
    besides their heading are dropped.
    """
    sections: list[Section] = []
    heading, lines, refs = title, [], []  # type: tuple[str, list[str], list[str]]

    def flush() -> None:
        if any(line.strip() for line in lines):
            text = "\n".join([heading, *lines])
            sections.append(Section(len(sections), heading, text, tuple(dict.fromkeys(refs))))

    for unit in text_units(body):
        plain = " ".join(unit.text.replace(REF_MARK, " ").split())
        if unit.kind == "heading":
            flush()
            heading, lines, refs = plain or title, [], []
            continue
        if plain:
            lines.append(f"- {plain}" if unit.kind == "item" else plain)
        refs.extend(r for r in unit.refs if r)
    flush()
    return sections


def page_chunks(path: str, text: str, claims: Iterable[Any]) -> list[ChunkSpec]:
    """The chunks of one page: its sections and its entity's active claims.

    Args:
        path: repository path of the page.
        text: the page file (front matter and markdown).
        claims: the page's claims; objects with ``id``, ``text``, ``quote``, ``status``, ``source_id``
            and optionally ``source_title`` (ORM rows or ``store.queries.ClaimView``). Only active ones
            are indexed.
    """
    meta, body = page_body(text)
    title = str(meta.get("title") or path.rsplit("/", 1)[-1].removesuffix(".md"))
    chunks = [
        ChunkSpec(
            SECTION,
            path,
            s.ordinal,
            title if s.heading == title else f"{title}: {s.heading}",
            s.text,
            {"page": path, "section": s.heading, "claims": list(s.claim_ids)},
        )
        for s in page_sections(body, title)
    ]
    for claim in claims:
        if getattr(claim, "status", "active") != "active":
            continue
        chunks.append(
            ChunkSpec(
                CLAIM,
                claim.id,
                0,
                title,
                f"{title}: {claim.text}",
                {
                    "page": path,
                    "claims": [claim.id],
                    "source_id": claim.source_id,
                    "source_title": getattr(claim, "source_title", ""),
                    "quote": claim.quote,
                },
            )
        )
    return chunks


def source_chunks(source_id: str, title: str, text: str) -> list[ChunkSpec]:
    """Split a source's parsed text into chunks of about ``SOURCE_CHUNK_TOKENS`` at sentence ends."""
    cite = {"source_id": source_id, "source_title": title}
    return [
        ChunkSpec(SOURCE, source_id, i, title, piece, cite)
        for i, piece in enumerate(chunk_text(text, SOURCE_CHUNK_TOKENS, SOURCE_CHUNK_OVERLAP))
    ]


def _inputs(chunks: Iterable[ChunkSpec]) -> list[ChunkInput]:
    return [ChunkInput(c.kind, c.ref, c.ordinal, c.text, c.title, c.citations) for c in chunks]


def _cited_claims(search: SearchIndex, path: str) -> set[str]:
    """Claim ids the indexed sections of ``path`` cited (to find claim chunks a re-render dropped)."""
    with search.engine.connect() as conn:
        rows = conn.execute(select(Chunk.citations).where(Chunk.kind == SECTION, Chunk.ref == path)).all()
        conn.rollback()
    return {c for (cites,) in rows for c in (cites or {}).get("claims", []) if isinstance(c, str)}


def index_page(search: SearchIndex, path: str, text: str, claims: Iterable[Any]) -> int:
    """Bring the index up to date with one page after it was published.

    Replaces the page's section chunks, upserts a chunk per active claim, and deletes the chunks of
    claims the previous version cited that are no longer active on it (retracted or superseded).

    Args:
        search: the search index.
        path: repository path of the page.
        text: the page file as published.
        claims: the page entity's claims (see :func:`page_chunks`); non-active ones are not indexed.

    Returns:
        How many chunks were written (new or changed).
    """
    claims = list(claims)
    chunks = page_chunks(path, text, claims)
    before = _cited_claims(search, path)
    active = {c.ref for c in chunks if c.kind == CLAIM}
    sections = [c for c in chunks if c.kind == SECTION]
    written = search.upsert(_inputs(sections), replace=True) if sections else 0
    if not sections:
        search.delete(SECTION, path)
    written += search.upsert(_inputs(c for c in chunks if c.kind == CLAIM))
    for claim_id in sorted(before - active - {c.id for c in claims if getattr(c, "status", "active") == "active"}):
        search.delete(CLAIM, claim_id)
    return written


def remove_page(search: SearchIndex, path: str) -> None:
    """Drop a deleted page's section chunks and the claim chunks it cited."""
    for claim_id in sorted(_cited_claims(search, path)):
        search.delete(CLAIM, claim_id)
    search.delete(SECTION, path)


def index_source(search: SearchIndex, source_id: str, title: str, text: str | None) -> int:
    """Index (or re-index) the raw text of one source; a source without text loses its chunks."""
    chunks = source_chunks(source_id, title, text or "")
    if not chunks:
        search.delete(SOURCE, source_id)
        return 0
    return search.upsert(_inputs(chunks), replace=True)


@dataclass
class ReindexStats:
    """What :func:`reindex_all` did."""

    pages: int = 0
    sections: int = 0
    claims: int = 0
    sources: int = 0
    source_chunks: int = 0
    written: int = 0
    removed: int = 0
    commit: str | None = None


def reindex_all(
    session: Session,
    store: GitStore,
    search: SearchIndex,
    *,
    batch: int = 256,
    progress: Callable[[str, int, int], None] | None = None,
) -> ReindexStats:
    """Rebuild the search index from the repository (pages at HEAD) and the ledger (claims, sources).

    Unchanged chunks are not re-embedded; chunks of pages, claims and sources that no longer exist are
    removed. Catalog pages (``wiki/index.md`` ...) are not indexed.

    Args:
        session: a ledger session (read only).
        store: the git page store.
        search: the search index to rebuild.
        batch: chunks embedded and written per transaction.
        progress: called with (phase, done, total) as work proceeds.
    """
    stats = ReindexStats(commit=store.head())
    pages = [p for p in store.list("wiki/", at=stats.commit) if p.endswith(".md") and p.count("/") >= 2]
    if stats.commit is None:
        pages = []
    entity_paths = {f"wiki/{t}/{s}.md": i for i, t, s in session.execute(select(Entity.id, Entity.type, Entity.slug))}
    active: dict[int, list[Claim]] = {}
    for claim in session.scalars(select(Claim).where(Claim.status == "active")):
        active.setdefault(claim.entity_id, []).append(claim)
    source_ids = list(session.scalars(select(Source.id).where(Source.status.not_in(RETIRED)).order_by(Source.id)))
    session.expunge_all()
    # End the read transaction before writing: on SQLite every transaction holds the write lock.
    session.rollback()
    search.ensure_index()
    pending: list[ChunkSpec] = []
    keep: dict[str, set[str]] = {SECTION: set(), CLAIM: set(), SOURCE: set()}

    def flush(force: bool = False) -> None:
        # Called only after whole pages or sources were added, so ``replace`` sees every ordinal of a ref.
        if pending and (force or len(pending) >= batch):
            stats.written += search.upsert(_inputs(pending), replace=True)
            pending.clear()

    for start in range(0, len(pages), batch):
        part = pages[start : start + batch]
        for path, found in store.read_many(part, at=stats.commit).items():
            if found.content is None:
                continue
            entity_id = entity_paths.get(path)
            claims = active.get(entity_id, []) if entity_id is not None else []
            chunks = page_chunks(path, found.content.decode("utf-8", "replace"), claims)
            stats.pages += 1
            for c in chunks:
                keep[c.kind].add(c.ref)
                stats.sections += c.kind == SECTION
                stats.claims += c.kind == CLAIM
            pending.extend(chunks)
            flush()
        if progress is not None:
            progress("pages", min(start + batch, len(pages)), len(pages))
    flush(force=True)
    for start in range(0, len(source_ids), 50):
        rows = session.execute(
            select(Source.id, Source.title, Source.slug, Source.text).where(
                Source.id.in_(source_ids[start : start + 50])
            )
        ).all()
        session.rollback()
        for sid, title, slug, text in rows:
            chunks = source_chunks(sid, title or slug, text or "")
            if chunks:
                keep[SOURCE].add(sid)
                stats.sources += 1
                stats.source_chunks += len(chunks)
            pending.extend(chunks)
            flush()
        if progress is not None:
            progress("sources", min(start + 50, len(source_ids)), len(source_ids))
    flush(force=True)
    stats.removed = _remove_stale(search, keep)
    return stats


def _remove_stale(search: SearchIndex, keep: dict[str, set[str]]) -> int:
    """Delete chunks whose page, claim or source is gone (or retired); returns how many refs were dropped."""
    removed = 0
    with search.engine.connect() as conn:
        present = conn.execute(select(Chunk.kind, Chunk.ref).distinct()).all()
        conn.rollback()
    for kind, ref in present:
        if kind in keep and ref not in keep[kind]:
            removed += search.delete(kind, ref)
    return removed
