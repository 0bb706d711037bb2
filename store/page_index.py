"""Turning pages into search chunks, and rebuilding the whole search index from git and the ledger.

A page becomes one ``section`` chunk per heading (the text under it, as plain text, with the claim ids
its footnotes cite) plus one ``claim`` chunk per active claim of the page's entity. Raw source text
becomes ``source`` chunks. Chunk identity is ``(kind, ref, ordinal)``: a section is ``(section, page
path, n)``, a claim ``(claim, claim id, 0)``, a source chunk ``(source, source id, n)``; every chunk
carries its citations (claim ids, page, source id and title) so a hit can be shown with its evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wiki.markdown import REF_MARK, text_units
from wiki.page import parse_page

log = logging.getLogger(__name__)

SECTION, CLAIM, SOURCE = "section", "claim", "source"
PAGE_KINDS = (SECTION, CLAIM)
#: Characters per raw source chunk (about 200 tokens) and the overlap between neighbours.
SOURCE_CHUNK_CHARS = 900
SOURCE_CHUNK_OVERLAP = 120


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
    """Split a source's parsed text into overlapping chunks, cut at whitespace where possible."""
    chunks: list[ChunkSpec] = []
    text = text.strip()
    start = 0
    while start < len(text):
        end = min(len(text), start + SOURCE_CHUNK_CHARS)
        if end < len(text):
            cut = text.rfind(" ", start + SOURCE_CHUNK_CHARS // 2, end)
            end = cut if cut > start else end
        piece = text[start:end].strip()
        if piece:
            chunks.append(
                ChunkSpec(SOURCE, source_id, len(chunks), title, piece, {"source_id": source_id, "source_title": title})
            )
        if end >= len(text):
            break
        start = max(end - SOURCE_CHUNK_OVERLAP, start + 1)
    return chunks
