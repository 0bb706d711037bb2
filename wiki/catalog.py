"""The generated pages: ``wiki/index.md``, ``wiki/log.md`` and ``wiki/contradictions.md``.

Each is rendered from plain views the caller fills from the database into one machine region,
``catalog``; text a person writes outside it survives regeneration like on any other page. Output is the
same bytes for the same inputs (everything is sorted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wiki.entity_page import ClaimView
from wiki.escaping import escape_inline, wikilink
from wiki.merge import RenderedPage, merge_page

__all__ = [
    "CONTRADICTIONS_PATH",
    "INDEX_PATH",
    "LOG_PATH",
    "CatalogEntry",
    "DisputeView",
    "LogEntry",
    "render_contradictions",
    "render_index",
    "render_log",
]

INDEX_PATH = "wiki/index.md"
LOG_PATH = "wiki/log.md"
CONTRADICTIONS_PATH = "wiki/contradictions.md"


@dataclass(frozen=True)
class CatalogEntry:
    """One page listed in the index. ``type`` is the entity type (``source`` for source pages)."""

    title: str
    type: str
    target: str
    summary: str = ""
    claims: int = 0


@dataclass(frozen=True)
class LogEntry:
    """One event of the ingest log. ``at`` is an ISO-8601 timestamp (UTC), so it sorts as text."""

    at: str
    action: str
    source_title: str
    source_target: str
    claims: int = 0
    entities: Sequence[tuple[str, str]] = ()
    detail: str = ""


@dataclass(frozen=True)
class DisputeView:
    """A dispute between two claims about one entity: open, or decided by a person (``resolution`` set:
    "Dispute resolved (one side kept) by alice on 2026-12-04: why")."""

    entity_title: str
    entity_target: str
    claim_a: ClaimView
    claim_b: ClaimView
    reason: str = ""
    opened: str = ""
    resolution: str | None = None
    kept: str | None = None


def _meta(title: str, kind: str, updated: str) -> dict[str, object]:
    return {"title": title, "type": "catalog", "updated": updated, "tags": ["catalog"], "lore_catalog": kind}


def _type_heading(kind: str) -> str:
    if kind == "source":
        return "Sources"
    words = kind.replace("_", " ").replace("-", " ").strip() or "other"
    return escape_inline(words[:1].upper() + words[1:])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def render_index(entries: Sequence[CatalogEntry], previous: str | None, updated: str) -> RenderedPage:
    """Render ``wiki/index.md``: every page, grouped by type, types and titles in alphabetical order.

    Args:
        entries: one per page to list (entity pages and source pages).
        previous: the index at HEAD, or None.
        updated: the ``updated`` front matter value.
    """
    by_type: dict[str, list[CatalogEntry]] = {}
    for entry in set(entries):
        by_type.setdefault(entry.type, []).append(entry)
    lines = ["# Index", "", f"{_plural(len(set(entries)), 'page')}."]
    for kind in sorted(by_type, key=lambda k: (k == "source", k)):  # sources after the entity types
        group = sorted(by_type[kind], key=lambda e: (e.title.casefold(), e.title, e.target))
        lines += ["", f"## {_type_heading(kind)} ({len(group)})", ""]
        for entry in group:
            summary = f": {escape_inline(entry.summary)}" if entry.summary.strip() else ""
            claims = f" ({_plural(entry.claims, 'claim')})" if entry.claims else ""
            lines.append(f"- {wikilink(entry.target, entry.title)}{summary}{claims}")
    content = "\n".join(lines) + "\n"
    return merge_page(previous, _meta("Index", "index", updated), [("catalog", content)], updated)


def render_log(entries: Sequence[LogEntry], previous: str | None, updated: str) -> RenderedPage:
    """Render ``wiki/log.md``: the ingest log, oldest first, one section per event.

    Args:
        entries: the events to show (the caller decides how far back).
        previous: the log at HEAD, or None.
        updated: the ``updated`` front matter value.
    """
    ordered = sorted(entries, key=lambda e: (e.at, e.source_target, e.action, e.detail, e.claims))
    lines = ["# Ingest log"]
    for entry in ordered:
        lines += ["", f"## [{escape_inline(entry.at)}] {escape_inline(entry.action)} | "
                  f"{escape_inline(entry.source_title)}", ""]  # fmt: skip
        source = entry.source_title or entry.source_target
        if entry.source_target.strip():
            lines.append(f"- Source: {wikilink(entry.source_target, source)}")
        else:
            lines.append(f"- Source: {escape_inline(source)}")
        if entry.claims:
            lines.append(f"- Claims: {entry.claims}")
        if entry.entities:
            pages = sorted(set(entry.entities), key=lambda item: (item[0].casefold(), item[0], item[1]))
            lines.append("- Pages: " + ", ".join(wikilink(target, title) for title, target in pages))
        if entry.detail.strip():
            lines.append(f"- Detail: {escape_inline(entry.detail)}")
    if not ordered:
        lines += ["", "Nothing ingested yet."]
    content = "\n".join(lines) + "\n"
    return merge_page(previous, _meta("Ingest log", "log", updated), [("catalog", content)], updated)


def _side(claim: ClaimView) -> str:
    source = (
        wikilink(claim.source_page, claim.source_title)
        if claim.source_page.strip()
        else (escape_inline(claim.source_title or claim.source_id))
    )
    quote = f': "{escape_inline(claim.quote)}"' if claim.quote.strip() else ""
    return f"> - {escape_inline(claim.text)}{quote} ({source})"


def render_contradictions(disputes: Sequence[DisputeView], previous: str | None, updated: str) -> RenderedPage:
    """Render ``wiki/contradictions.md``: open disputes grouped by entity, both claims with their sources.

    Args:
        disputes: the open disputes.
        previous: the page at HEAD, or None.
        updated: the ``updated`` front matter value.
    """
    open_ones = [d for d in disputes if d.resolution is None]
    decided = [d for d in disputes if d.resolution is not None]
    lines = ["# Contradictions", "", f"{_plural(len(open_ones), 'open dispute')}."]

    def key(d: DisputeView) -> tuple[str, str, str]:
        a, b = sorted((d.claim_a.id, d.claim_b.id))
        return a, b, d.reason

    def grouped(rows: Sequence[DisputeView], level: str) -> list[str]:
        by_entity: dict[tuple[str, str], list[DisputeView]] = {}
        for dispute in rows:
            by_entity.setdefault((dispute.entity_title, dispute.entity_target), []).append(dispute)
        out: list[str] = []
        for title, target in sorted(by_entity, key=lambda k: (k[0].casefold(), k[0], k[1])):
            out += ["", f"{level} {wikilink(target, title)}"]
            for dispute in sorted(by_entity[(title, target)], key=key):
                reason = f": {escape_inline(dispute.reason)}" if dispute.reason.strip() else ""
                if dispute.resolution is None:
                    opened = f" (since {escape_inline(dispute.opened)})" if dispute.opened.strip() else ""
                    out += ["", f"> [!warning] Sources disagree{reason}{opened}"]
                else:
                    out += ["", f"> [!note] {dispute.resolution}"]
                    if reason:
                        out.append(f"> The judge{reason}")
                for claim in sorted((dispute.claim_a, dispute.claim_b), key=lambda c: c.id):
                    kept = " *(kept)*" if dispute.kept == claim.id else ""
                    out.append(_side(claim) + kept)
        return out

    lines += grouped(open_ones, "##")
    if decided:
        lines += ["", "## Resolved", "", f"{_plural(len(decided), 'dispute')} decided by a reviewer."]
        lines += grouped(decided, "###")
    content = "\n".join(lines) + "\n"
    meta = _meta("Contradictions", "contradictions", updated)
    return merge_page(previous, meta, [("catalog", content)], updated)
