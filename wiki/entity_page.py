"""Rendering entity and source pages from plain views of the ledger (no I/O: the caller fills the views).

An entity page is front matter, then the regions ``summary`` (the title and the composed prose),
``facts`` (one bullet per active claim, each ending in its ``[^claim-id]`` footnote), ``conflicts`` (a
"Conflicting sources" block per dispute quoting both sides), ``history`` (superseded claims, marked as
such and not as disputes), ``related`` (wikilinks) and ``sources`` (the footnote definitions,
``[^id]: [[source page|source title]]: "quote"``). Footnotes are keyed by claim id, never by position.
Claim text and quotes are untrusted and escaped; the output is the same bytes for the same inputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wiki.escaping import escape_inline, safe_prose, wikilink
from wiki.merge import RenderedPage, merge_page

__all__ = [
    "ENTITY_REGIONS",
    "SOURCE_REGIONS",
    "ClaimView",
    "ConflictView",
    "EntityView",
    "SourceView",
    "decision_line",
    "footnote_label",
    "render_entity_page",
    "render_source_page",
]

ENTITY_REGIONS = ("summary", "facts", "conflicts", "history", "related", "sources")
SOURCE_REGIONS = ("summary", "entities", "claims", "sources")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}")


@dataclass(frozen=True)
class ClaimView:
    """One claim as a page shows it. ``source_page`` is the wikilink target of the source's page."""

    id: str
    text: str
    quote: str
    source_id: str
    source_title: str
    source_page: str
    status: str = "active"
    valid_from: str | None = None
    valid_to: str | None = None
    superseded_by: str | None = None


@dataclass(frozen=True)
class ConflictView:
    """Two claims the judge found in dispute, and why."""

    claim_a: ClaimView
    claim_b: ClaimView
    reason: str = ""
    # Set once a person decided (``synth.disputes``): keep | both_valid | dismiss, the side kept, by
    # whom, when (YYYY-MM-DD) and why.
    decision: str | None = None
    kept: str | None = None
    resolved_by: str = ""
    resolved_on: str = ""
    note: str = ""


@dataclass(frozen=True)
class EntityView:
    """Everything an entity page shows. ``summary`` is prose citing claims as ``[^id]``; ``related`` is
    ``(title, wikilink target)``; ``claims`` are the active claims, ``history`` the superseded ones."""

    entity_id: int | str
    name: str
    type: str
    slug: str
    aliases: Sequence[str] = ()
    revision: int = 0
    summary: str | None = None
    claims: Sequence[ClaimView] = ()
    history: Sequence[ClaimView] = ()
    conflicts: Sequence[ConflictView] = ()
    related: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True)
class SourceView:
    """Everything a source page shows. ``entities`` is ``(title, wikilink target)``."""

    source_id: str
    slug: str
    title: str
    origin: str
    summary: str | None = None
    entities: Sequence[tuple[str, str]] = ()
    claims: Sequence[ClaimView] = ()
    status: str = "done"
    extra_meta: dict[str, str] = field(default_factory=dict)
    warning: str | None = None  # why the source added no facts (shown under its summary)


def footnote_label(claim_id: str) -> str:
    """Return the footnote label of a claim (its id).

    Raises:
        ValueError: when the id cannot be a footnote label (spaces, brackets, ...).
    """
    if not _LABEL.fullmatch(claim_id):
        raise ValueError(f"claim id {claim_id!r} cannot be a footnote label")
    return claim_id


def _cite(claim: ClaimView) -> str:
    return f"[^{footnote_label(claim.id)}]"


def _validity(claim: ClaimView) -> str:
    start, end = escape_inline(claim.valid_from or ""), escape_inline(claim.valid_to or "")
    if start and end:
        return f" (from {start} to {end})"
    if start:
        return f" (from {start})"
    if end:
        return f" (until {end})"
    return ""


def _unique(claims: Iterable[ClaimView]) -> list[ClaimView]:
    seen: dict[str, ClaimView] = {}
    for claim in claims:
        seen.setdefault(claim.id, claim)
    return list(seen.values())


def _by_text(claims: Iterable[ClaimView]) -> list[ClaimView]:
    return sorted(_unique(claims), key=lambda c: (c.text.casefold(), c.text, c.id))


def _section(heading: str, lines: list[str]) -> str:
    return f"## {heading}\n\n" + "\n".join(lines) + "\n" if lines else ""


def _facts(claims: Sequence[ClaimView]) -> str:
    return _section("Facts", [f"- {escape_inline(c.text)}{_validity(c)} {_cite(c)}" for c in _by_text(claims)])


def type_tag(entity_type: str) -> str:
    """The Obsidian tag of an entity type: lower case, no spaces (``Systems`` -> ``systems``)."""
    tag = "-".join(entity_type.strip().lower().split())
    return "".join(c for c in tag if c.isalnum() or c in "-_/") or "entity"


def _conflicts(conflicts: Sequence[ConflictView]) -> str:
    def key(conflict: ConflictView) -> tuple[str, str, str]:
        a, b = sorted((conflict.claim_a.id, conflict.claim_b.id))
        return a, b, conflict.reason

    blocks: list[str] = []
    for conflict in sorted(conflicts, key=lambda c: (c.decision is not None, *key(c))):
        reason = escape_inline(conflict.reason)
        # An Obsidian callout; elsewhere it reads as a quote starting with "[!warning]".
        if conflict.decision is None:
            lines = [f"> [!warning] Sources disagree{': ' + reason if reason else ''}"]
        else:
            lines = [f"> [!note] {_decision(conflict)}"]
            if reason:
                lines.append(f"> The judge: {reason}")
        for claim in sorted((conflict.claim_a, conflict.claim_b), key=lambda c: c.id):
            quote = f': "{escape_inline(claim.quote)}"' if claim.quote.strip() else ""
            kept = " *(kept)*" if conflict.decision == "keep" and claim.id == conflict.kept else ""
            lines.append(f"> - {escape_inline(claim.text)}{quote} {_cite(claim)}{kept}")
        blocks.append("\n".join(lines))
    return "## Conflicting sources\n\n" + "\n\n".join(blocks) + "\n" if blocks else ""


DECISION_WORDS = {"keep": "one side kept", "both_valid": "both sides hold", "dismiss": "not a real disagreement"}


def decision_line(decision: str, resolved_by: str = "", resolved_on: str = "", note: str = "") -> str:
    """"Dispute resolved (one side kept) by alice on 2026-12-04: why" (markdown, escaped)."""
    what = escape_inline(DECISION_WORDS.get(decision, decision))
    by = f" by {escape_inline(resolved_by)}" if resolved_by else ""
    on = f" on {escape_inline(resolved_on)}" if resolved_on else ""
    why = f": {escape_inline(' '.join(note.split()))}" if note.strip() else ""
    return f"Dispute resolved ({what}){by}{on}{why}"


def _decision(conflict: ConflictView) -> str:
    return decision_line(conflict.decision or "", conflict.resolved_by, conflict.resolved_on, conflict.note)


def _history(history: Sequence[ClaimView], on_page: set[str]) -> str:
    lines = []
    ordered = sorted(_unique(history), key=lambda c: (c.valid_from or "", c.valid_to or "", c.text, c.id))
    for claim in ordered:
        by = claim.superseded_by
        replaced = f" (replaced by [^{footnote_label(by)}])" if by and by in on_page else ""
        lines.append(f"- *Superseded:* {escape_inline(claim.text)}{_validity(claim)} {_cite(claim)}{replaced}")
    return _section("History", lines)


def _links(heading: str, items: Sequence[tuple[str, str]]) -> str:
    unique = sorted(set(items), key=lambda item: (item[0].casefold(), item[0], item[1]))
    return _section(heading, [f"- {wikilink(target, title)}" for title, target in unique])


def _footnotes(claims: Iterable[ClaimView]) -> str:
    lines = []
    for claim in sorted(_unique(claims), key=lambda c: c.id):
        if claim.source_page.strip():
            where = wikilink(claim.source_page, claim.source_title or claim.source_page)
        else:
            where = escape_inline(claim.source_title or claim.source_id)
        quote = f': "{escape_inline(claim.quote)}"' if claim.quote.strip() else ""
        lines.append(f"{_cite(claim)}: {where}{quote}")
    return "\n".join(lines) + "\n" if lines else ""


def _heading(title: str, prose: str | None, *lines: str) -> str:
    body = safe_prose(prose) if prose else ""
    paragraphs = [line for line in (*lines, body) if line]
    return f"# {escape_inline(title)}\n" + "".join(f"\n{p}\n" for p in paragraphs)


def render_entity_page(view: EntityView, previous: str | None, updated: str) -> RenderedPage:
    """Render an entity page, on top of its previous text when there is one.

    Args:
        view: the entity and its claims, conflicts and related pages.
        previous: the page text at HEAD, or None for a new page. Human text outside regions is kept
            verbatim and in place; a region a person edited is kept in a Notes section.
        updated: the ``updated`` front matter value (an ISO date or timestamp).

    Returns:
        The page text and the names of the regions whose manual edits were kept in Notes.

    Raises:
        ValueError: when a claim id cannot be a footnote label.
    """
    disputed = [c for conflict in view.conflicts for c in (conflict.claim_a, conflict.claim_b)]
    cited = _unique([*view.claims, *view.history, *disputed])
    on_page = {c.id for c in cited}
    meta = {
        "title": view.name,
        "type": view.type,
        "aliases": sorted(set(view.aliases)),
        "sources": sorted({c.source_id for c in cited}),
        "updated": updated,
        "tags": [type_tag(view.type)],
        "lore_entity": view.entity_id,
        "lore_revision": view.revision,
    }
    regions = [
        ("summary", _heading(view.name, view.summary)),
        ("facts", _facts(view.claims)),
        ("conflicts", _conflicts(view.conflicts)),
        ("history", _history(view.history, on_page)),
        ("related", _links("Related", view.related)),
        ("sources", _footnotes(cited)),
    ]
    return merge_page(previous, meta, regions, updated)


def render_source_page(view: SourceView, previous: str | None, updated: str) -> RenderedPage:
    """Render the page of one source (``wiki/sources/<slug>.md``).

    Args:
        view: the source, the entities it touched and the claims it contributed.
        previous: the page text at HEAD, or None.
        updated: the ``updated`` front matter value.

    Returns:
        The page text and the names of the regions whose manual edits were kept in Notes.
    """
    status = ""
    if view.status in ("retracted", "replaced"):
        status = f"*This source was {view.status}; its claims no longer count.*"
    elif view.warning:
        status = f"*Warning: {escape_inline(view.warning)}*"
    origin = f"*Origin:* {escape_inline(view.origin)}" if view.origin.strip() else ""
    meta = {
        "title": view.title,
        "type": "source",
        "aliases": [],
        "sources": [view.source_id],
        "updated": updated,
        **view.extra_meta,
        "tags": ["source"],
        "lore_source": view.source_id,
        "lore_status": view.status,
    }
    regions = [
        ("summary", _heading(view.title, view.summary, origin, status)),
        ("entities", _links("Entities", view.entities)),
        ("claims", _section("Claims", [f"- {escape_inline(c.text)} {_cite(c)}" for c in _by_text(view.claims)])),
        ("sources", _footnotes(view.claims)),
    ]
    return merge_page(previous, meta, regions, updated)
