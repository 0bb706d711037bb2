"""Reading pages for the API, MCP tools and web UI: blobs at HEAD, never the working tree.

:class:`WikiView` wraps the git store with what every read needs and caches what is derived from one
commit: the list of pages and the wikilink resolver (page titles, entity names and aliases, file names).
HEAD is looked up at most every ``head_ttl_s`` seconds, so a burst of reads costs one ``git`` process
each (the blob read) rather than two, and a page published a moment ago shows up within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.errors import BadRequest, NotFound
from store.errors import InvalidPath
from store.git_store import GitStore
from store.models import Entity
from store.queries import entity_names, name_fingerprint, page_meta
from wiki.links import LinkIndex, PageRef
from wiki.page import parse_page

WIKI_PREFIX = "wiki/"


def page_type(path: str) -> str:
    """``wiki/<type>/<slug>.md`` -> type; top-level pages (index, log, contradictions) -> ``catalog``."""
    parts = path.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == "wiki" else "catalog"


def title_from_path(path: str) -> str:
    stem = path.rsplit("/", 1)[-1].removesuffix(".md")
    return stem.replace("-", " ").strip() or stem


@dataclass(frozen=True)
class PageText:
    """A page read at one commit."""

    path: str
    text: str
    version: str
    commit: str | None
    meta: dict[Any, Any]
    body: str
    title: str
    type: str


@dataclass
class _Snapshot:
    commit: str | None
    pages: list[str]
    links: LinkIndex
    titles: dict[str, str]
    fingerprint: tuple[int, ...]


class WikiView:
    """Read access to the wiki at HEAD with per-commit caches.

    Args:
        store: the git page store.
        session_factory: ledger sessions (titles, entity names and aliases for link resolution).
        head_ttl_s: how long a looked-up HEAD is trusted.
        clock: monotonic clock.
    """

    def __init__(
        self,
        store: GitStore,
        session_factory: sessionmaker[Session],
        *,
        head_ttl_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.session_factory = session_factory
        self.head_ttl_s = head_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._head: tuple[float, str | None] | None = None
        self._snapshot: _Snapshot | None = None

    # --- HEAD and the page list ------------------------------------------------------------------

    def head(self) -> str | None:
        """The branch's commit, cached for ``head_ttl_s``."""
        now = self._clock()
        cached = self._head
        if cached is not None and now - cached[0] < self.head_ttl_s:
            return cached[1]
        commit = self.store.head()
        self._head = (now, commit)
        return commit

    def _snap(self) -> _Snapshot:
        commit = self.head()
        snap = self._snapshot
        if snap is not None and snap.commit == commit:
            with self.session_factory() as session:
                if name_fingerprint(session) == snap.fingerprint:
                    return snap
        with self._lock:
            snap = self._build(commit)
            self._snapshot = snap
            return snap

    def _build(self, commit: str | None) -> _Snapshot:
        pages = [p for p in self.store.list(WIKI_PREFIX, at=commit) if p.endswith(".md")] if commit else []
        with self.session_factory() as session:
            fingerprint = name_fingerprint(session)
            meta = page_meta(session)
            names = entity_names(session)
            entity_paths = {
                i: f"wiki/{t}/{s}.md" for i, t, s in session.execute(select(Entity.id, Entity.type, Entity.slug))
            }
        aliases: dict[str, list[str]] = {}
        for name, entity_id in names:
            target = entity_paths.get(entity_id)
            if target is not None:
                aliases.setdefault(target, []).append(name)
        titles = {p: (meta[p].title if p in meta and meta[p].title else title_from_path(p)) for p in pages}
        index = LinkIndex(PageRef(p, titles[p], tuple(aliases.get(p, ()))) for p in pages)
        return _Snapshot(commit, pages, index, titles, fingerprint)

    def pages(self) -> tuple[str | None, list[str], dict[str, str]]:
        """(commit, page paths, path -> title) at HEAD."""
        snap = self._snap()
        return snap.commit, snap.pages, snap.titles

    def resolve(self, target: str) -> str | None:
        """The page a wikilink target names (path, title, entity name or alias, file name), or None."""
        return self._snap().links.resolve(target)

    def resolver(self, href_for: Callable[[str], str]) -> Callable[[str], str | None]:
        """A ``target -> href`` function for ``wiki.markdown.to_html``."""

        def resolve(target: str) -> str | None:
            path = self.resolve(target)
            return None if path is None else href_for(path)

        return resolve

    # --- one page --------------------------------------------------------------------------------

    def read(self, path: str) -> PageText:
        """Read one page at HEAD.

        Raises:
            BadRequest: the path is not a safe repository path.
            NotFound: no page at that path.
        """
        if not path.startswith(WIKI_PREFIX) or not path.endswith(".md"):
            raise NotFound(f"no page {path!r}: pages are wiki/....md paths")
        commit = self.head()
        if commit is None:
            raise NotFound(f"no page {path!r}: the wiki is empty")
        try:
            result = self.store.read(path, at=commit)
        except InvalidPath as exc:
            raise BadRequest(f"not a page path: {exc}") from None
        if result.content is None:
            raise NotFound(f"no page {path!r}")
        text = result.content.decode("utf-8", "replace")
        doc = parse_page(text)
        body = text[len(doc.front_matter_raw) :] if doc.front_matter_raw else text
        meta = doc.meta if isinstance(doc.meta, dict) else {}
        title = str(meta.get("title") or title_from_path(path))
        return PageText(path, text, result.version, commit, meta, body, title, page_type(path))
