"""Resolving wikilink targets to page paths, the way a reader of the vault would expect.

A target may name a page by its path relative to ``wiki/`` (``systems/kubernetes``, the form Lore writes),
by its repository path (``wiki/systems/kubernetes.md``), by its file name (``kubernetes``, as Obsidian does),
by its title or by one of its aliases; comparisons ignore case and repeated spaces. When several pages
claim the same name, the more specific form wins (path, then title, then alias, then file name) and among
equals the first path in sorted order, so resolution is deterministic; ``ambiguous`` tells such names.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["LinkIndex", "PageRef", "normalize_target", "page_target"]

WIKI_DIR = "wiki/"


@dataclass(frozen=True)
class PageRef:
    """A page as link resolution sees it."""

    path: str
    title: str = ""
    aliases: Sequence[str] = ()


def page_target(path: str) -> str:
    """Return the wikilink target Lore writes for a page path: ``wiki/systems/k.md`` -> ``systems/k``."""
    target = path.removeprefix(WIKI_DIR)
    return target.removesuffix(".md")


def normalize_target(target: str) -> str:
    """Normalize a target for comparison: case-folded, spaces collapsed, no leading ``./`` or ``/``,
    no trailing ``.md``."""
    text = " ".join(target.split()).casefold()
    while text.startswith(("./", "/")):
        text = text[2:] if text.startswith("./") else text[1:]
    return text.removesuffix(".md")


class LinkIndex:
    """Maps wikilink targets to page paths."""

    _RANKS = ("path", "title", "alias", "name")

    def __init__(self, pages: Iterable[PageRef]) -> None:
        """Index ``pages``.

        Args:
            pages: every page a link may point at.
        """
        self._names: dict[str, dict[str, set[str]]] = {rank: {} for rank in self._RANKS}
        self.paths: set[str] = set()
        for page in pages:
            self.paths.add(page.path)
            forms = {
                "path": {page_target(page.path), page.path},
                "title": {page.title} if page.title else set(),
                "alias": set(page.aliases),
                "name": {posixpath.basename(page_target(page.path))},
            }
            for rank, names in forms.items():
                for name in names:
                    key = normalize_target(name)
                    if key:
                        self._names[rank].setdefault(key, set()).add(page.path)

    def _candidates(self, target: str) -> list[str]:
        key = normalize_target(target)
        for rank in self._RANKS:
            found = self._names[rank].get(key)
            if found:
                return sorted(found)
        return []

    def resolve(self, target: str) -> str | None:
        """Return the path of the page ``target`` names, or None when no page has that name."""
        found = self._candidates(target)
        return found[0] if found else None

    def ambiguous(self, target: str) -> list[str]:
        """Return the paths of all pages the target names equally well when there is more than one."""
        found = self._candidates(target)
        return found if len(found) > 1 else []
