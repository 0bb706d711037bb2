"""Re-rendering a page on top of its previous text without losing a byte a person wrote.

``merge_page`` takes freshly rendered regions and the page as it is now. Human text outside regions stays
verbatim and in place; each machine region is replaced by its new content where it stands; a region a
person edited (its content no longer matches the hash in its marker) is replaced too, but the person's
version is kept verbatim in a human-owned ``## Notes (kept from a manual edit ...)`` section right after
it and reported in ``RenderedPage.preserved_edits``. Regions the previous text lacks are inserted next to
their neighbours in the canonical order; regions of names the caller does not render are left untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from wiki.escaping import escape_inline
from wiki.page import PageDoc, Problem, Region, Text, parse_page, render_page

__all__ = ["RenderedPage", "merge_page", "notes_heading"]


@dataclass(frozen=True)
class RenderedPage:
    """A rendered page: its text, the regions whose manual edits were moved to Notes, and the problems
    found in the previous text (kept there as human text)."""

    text: str
    preserved_edits: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def notes_heading(region: str, updated: str) -> str:
    """Return the heading of the section that keeps a manual edit of ``region``."""
    return f"## Notes (kept from a manual edit of {region}, {escape_inline(updated)})"


def _fresh_parts(regions: Sequence[Region]) -> list[Text | Region]:
    parts: list[Text | Region] = []
    for i, region in enumerate(regions):
        if i:
            parts.append(Text("\n"))
        parts.append(region)
    return parts


def _merged_meta(old: PageDoc, meta: Mapping[str, Any]) -> dict[Any, Any]:
    merged = dict(old.meta)  # keys a person added (cssclasses, their own tags ...) survive in their place
    if "lore" in merged and isinstance(merged["lore"], dict):
        del merged["lore"]  # the nested form of the machine's properties, replaced by flat lore_* keys
    merged.update(meta)
    if "tags" in meta:
        theirs = old.meta.get("tags")
        kept = [theirs] if isinstance(theirs, str) else theirs if isinstance(theirs, list) else []
        merged["tags"] = list(dict.fromkeys([*meta["tags"], *(str(t) for t in kept if t is not None)]))
    return merged


def _insert_missing(parts: list[Text | Region], fresh: Sequence[Region], notes: set[int]) -> None:
    """Insert fresh regions the page lacks after their nearest present predecessor in canonical order."""
    order = [r.name for r in fresh]

    def index_of(name: str) -> int | None:
        return next((i for i, p in enumerate(parts) if isinstance(p, Region) and p.name == name), None)

    for k, region in enumerate(fresh):
        if index_of(region.name) is not None:
            continue
        before = [i for name in order[:k] if (i := index_of(name)) is not None]
        after = [i for name in order[k + 1 :] if (i := index_of(name)) is not None]
        if before:
            at = before[-1] + 1
            while at < len(parts) and id(parts[at]) in notes:
                at += 1
            parts[at:at] = [Text("\n"), region]
        elif after:
            at = after[0]
            parts[at:at] = [region, Text("\n")]
        else:
            body = render_page(PageDoc(parts=parts))
            lead = [] if not body else ([Text("\n")] if body.endswith("\n") else [Text("\n\n")])
            parts.extend([*lead, region])


def merge_page(
    previous: str | None,
    meta: Mapping[str, Any],
    regions: Sequence[tuple[str, str]],
    updated: str,
) -> RenderedPage:
    """Render a page from fresh regions, on top of its previous text when there is one.

    Args:
        previous: the page text now (None or empty for a new page).
        meta: front matter keys the machine owns; other keys of the previous front matter are kept.
        regions: ``(name, markdown)`` in canonical order; the markdown must hold no marker line.
        updated: the date written into Notes headings.

    Returns:
        The page text and what was preserved. Deterministic for the same arguments.

    Raises:
        PageError: when a region name is invalid or its content contains a marker line.
    """
    fresh = [Region.machine(name, content) for name, content in regions]
    if not previous:
        return RenderedPage(render_page(PageDoc(meta=dict(meta), parts=_fresh_parts(fresh))))
    old = parse_page(previous)
    by_name = {r.name: r for r in fresh}
    parts: list[Text | Region] = []
    notes: set[int] = set()
    preserved: list[str] = []
    for part in old.parts:
        if isinstance(part, Text):
            parts.append(part)
            continue
        if part.name not in by_name:  # a region someone else owns: untouched but for a final newline
            parts.append(replace(part, close_eol=part.close_eol or "\n"))
            continue
        parts.append(by_name[part.name])
        if part.edited and part.content != by_name[part.name].content:
            kept = part.content if part.content.endswith("\n") else part.content + "\n"
            note = Text(f"\n{notes_heading(part.name, updated)}\n\n{kept}")
            notes.add(id(note))
            parts.append(note)
            preserved.append(part.name)
    _insert_missing(parts, fresh, notes)
    doc = PageDoc(
        meta=_merged_meta(old, meta),
        parts=parts,
        problems=old.problems,
    )
    return RenderedPage(render_page(doc), preserved, list(old.problems))
