"""Pages at HEAD from memory: the HEAD snapshot, the wikilink index and parsed pages cached by blob id.

:class:`WikiView` reads objects through one :class:`store.git_reader.GitReader` (a ``cat-file --batch``
process kept open for the life of the app), so no read starts a process. HEAD is checked on every call
with a ``stat`` of the ref file, so a page published a moment ago is read at once. What is derived from
HEAD (the page list, the wikilink resolver over page titles, entity names and aliases) is rebuilt when
HEAD moves or the ledger's ``names`` revision (:mod:`store.ledger_revision`) changes. A parsed page is
cached by ``(blob id, path)``: a blob never changes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.cache import LruCache
from api.errors import BadRequest, NotFound
from store import ledger_revision
from store.db import read_only
from store.errors import InvalidPath
from store.git_plumbing import check_path
from store.git_reader import GitReader
from store.git_store import GitStore
from store.queries import entity_names, entity_paths, page_meta
from wiki.links import LinkIndex, PageRef
from wiki.markdown import extract_wikilinks
from wiki.page import parse_page

WIKI_PREFIX = "wiki/"
_COMMIT = re.compile(r"[0-9a-fA-F]{4,64}")


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


@dataclass(frozen=True)
class Revision:
    """What a read depends on: the commit it reads and the ledger revision tokens."""

    commit: str | None
    names: str | None
    claims: str | None


@dataclass
class _Links:
    key: tuple[str | None, str | None]
    pages: list[str]
    links: LinkIndex
    titles: dict[str, str]


@dataclass(frozen=True)
class LinkGraph:
    """The wikilinks between pages at one HEAD: ``out[p]`` are the pages ``p`` links to, ``into[p]`` the
    pages that link to ``p`` (its backlinks); links of a page to itself and dangling links are left out."""

    key: tuple[str | None, str | None]
    out: dict[str, frozenset[str]]
    into: dict[str, frozenset[str]]


def parse(path: str, blob_id: str, commit: str | None, content: bytes) -> PageText:
    """A page file as :class:`PageText`."""
    text = content.decode("utf-8", "replace")
    doc = parse_page(text)
    body = text[len(doc.front_matter_raw) :] if doc.front_matter_raw else text
    meta = doc.meta if isinstance(doc.meta, dict) else {}
    title = str(meta.get("title") or title_from_path(path))
    return PageText(path, text, blob_id, commit, meta, body, title, page_type(path))


class WikiView:
    """Read access to the wiki at HEAD (or at a commit) with caches keyed by what they derive from.

    Args:
        store: the git page store (its repository and branch; history and diffs).
        session_factory: ledger sessions (titles, entity names and aliases for link resolution).
        page_cache_items: parsed pages kept (least recently used dropped first).
    """

    def __init__(
        self, store: GitStore, session_factory: sessionmaker[Session], *, page_cache_items: int = 20_000
    ) -> None:
        self.store = store
        self.session_factory = session_factory
        bind = session_factory.kw.get("bind")
        self._engine: Engine | None = read_only(bind) if isinstance(bind, Engine) else None
        self._reader: GitReader | None = None
        self._lock = threading.Lock()
        self._links: _Links | None = None
        self._parsed: LruCache[tuple[str, str], PageText] = LruCache(max_items=page_cache_items)
        self._graph: LinkGraph | None = None
        self._graph_lock = threading.Lock()
        # blob id -> the wikilink targets written in it: a blob never changes, so a new HEAD re-reads
        # only the pages that changed.
        self._targets: LruCache[str, tuple[str, ...]] = LruCache(max_items=page_cache_items * 2)

    # --- the object reader -------------------------------------------------------------------------

    def reader(self) -> GitReader | None:
        """The process's object reader, opened on first use (None while there is no repository)."""
        if self._reader is None:
            with self._lock:
                if self._reader is None:
                    location = self.store._repo.locate()
                    if location is None:
                        return None
                    self._reader = GitReader(location[0], self.store.ref, WIKI_PREFIX)
        return self._reader

    def close(self) -> None:
        """Stop the object reader's process (at app shutdown)."""
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def head_blobs(self) -> tuple[str | None, dict[str, str]]:
        """(HEAD commit, path -> blob id of every file under ``wiki/``)."""
        reader = self.reader()
        if reader is None:
            return None, {}
        snap = reader.snapshot()
        return snap.commit, snap.blobs

    def head(self) -> str | None:
        """The branch's commit now."""
        return self.head_blobs()[0]

    def revision(self) -> Revision:
        """HEAD and the ledger revision tokens, read now (two ``stat`` calls, one primary-key lookup)."""
        commit = self.head()
        if self._engine is None:
            with self.session_factory() as session:
                names, claims = ledger_revision.current(session.connection())
        else:
            names, claims = ledger_revision.current_fast(self._engine)
        return Revision(commit, names, claims)

    # --- HEAD and the page list --------------------------------------------------------------------

    def _snap(self, rev: Revision | None = None) -> _Links:
        rev = rev or self.revision()
        key = (rev.commit, rev.names)
        links = self._links
        if links is not None and links.key == key:
            return links
        with self._lock:
            links = self._links
            if links is not None and links.key == key:
                return links
            links = self._build(key)
            self._links = links
            return links

    def _build(self, key: tuple[str | None, str | None]) -> _Links:
        commit, blobs = self.head_blobs()
        pages = sorted(p for p in blobs if p.endswith(".md"))
        with self.session_factory() as session:
            meta = page_meta(session)
            names = entity_names(session)
            paths = entity_paths(session)
        aliases: dict[str, list[str]] = {}
        for name, entity_id in names:
            target = paths.get(entity_id)
            if target is not None:
                aliases.setdefault(target, []).append(name)
        titles = {p: (meta[p].title if p in meta and meta[p].title else title_from_path(p)) for p in pages}
        index = LinkIndex(PageRef(p, titles[p], tuple(aliases.get(p, ()))) for p in pages)
        # Keyed by what was asked for: if HEAD moved meanwhile, the next call sees another key.
        return _Links(key if key[0] == commit else (commit, key[1]), pages, index, titles)

    def pages(self, rev: Revision | None = None) -> tuple[str | None, list[str], dict[str, str]]:
        """(commit, page paths, path -> title) at HEAD."""
        snap = self._snap(rev)
        return snap.key[0], snap.pages, snap.titles

    def links_key(self, rev: Revision | None = None) -> tuple[str | None, str | None]:
        """What the wikilink resolver was built from: (commit, names revision)."""
        return self._snap(rev).key

    def resolve(self, target: str, rev: Revision | None = None) -> str | None:
        """The page a wikilink target names (path, title, entity name or alias, file name), or None."""
        return self._snap(rev).links.resolve(target)

    def resolver(self, href_for: Callable[[str], str], rev: Revision | None = None) -> Callable[[str], str | None]:
        """A ``target -> href`` function for ``wiki.markdown.to_html``."""
        links = self._snap(rev).links

        def resolve(target: str) -> str | None:
            path = links.resolve(target)
            return None if path is None else href_for(path)

        return resolve

    def link_graph(self, rev: Revision | None = None) -> LinkGraph:
        """Which page links to which at HEAD, rebuilt when HEAD or the ledger's names move.

        The first build reads every page once; later builds read only blobs not seen before and
        resolve every link again (a new page or alias can make a dangling link resolve).
        """
        snap = self._snap(rev)
        graph = self._graph
        if graph is not None and graph.key == snap.key:
            return graph
        with self._graph_lock:
            graph = self._graph
            if graph is None or graph.key != snap.key:
                graph = self._build_graph(snap)
                self._graph = graph
            return graph

    def _build_graph(self, snap: _Links) -> LinkGraph:
        reader = self.reader()
        commit, blobs = self.head_blobs()
        if reader is None or commit != snap.key[0]:  # HEAD moved meanwhile: the next call rebuilds
            blobs = {}
        out: dict[str, set[str]] = {}
        into: dict[str, set[str]] = {}
        for path in snap.pages:
            blob_id = blobs.get(path)
            if blob_id is None or reader is None:
                continue
            targets = self._targets.get(blob_id)
            if targets is None:
                text = reader.blob(blob_id).decode("utf-8", "replace")
                targets = tuple(dict.fromkeys(link.target for link in extract_wikilinks(text) if link.target))
                self._targets.put(blob_id, targets, 64 + sum(len(t) for t in targets))
            for target in targets:
                found = snap.links.resolve(target)
                if found is not None and found != path:
                    out.setdefault(path, set()).add(found)
                    into.setdefault(found, set()).add(path)
        return LinkGraph(
            snap.key,
            {p: frozenset(v) for p, v in out.items()},
            {p: frozenset(v) for p, v in into.items()},
        )

    # --- one page ----------------------------------------------------------------------------------

    def cached(self, path: str) -> PageText | None:
        """The page at HEAD if HEAD has not moved and the page was parsed before, else None (no I/O
        beyond two ``stat`` calls): the fast path a request can take without leaving the event loop."""
        reader = self._reader
        snap = reader.current() if reader is not None else None
        if snap is None or snap.commit is None:
            return None
        blob_id = snap.blobs.get(path)
        found = self._parsed.get((blob_id, path)) if blob_id is not None else None
        if found is None:
            return None
        return found if found.commit == snap.commit else _at(found, snap.commit)

    def links_ready(self, rev: Revision) -> tuple[str | None, str | None] | None:
        """The wikilink index's key if it is built for ``rev``, else None (building it is slow)."""
        links = self._links
        return links.key if links is not None and links.key == (rev.commit, rev.names) else None

    def read(self, path: str, at: str | None = None) -> PageText:
        """Read one page at HEAD (or at commit ``at``) from memory when its blob was read before.

        Raises:
            BadRequest: the path is not a safe repository path, or ``at`` is not a commit id.
            NotFound: no page at that path (or no such commit).
        """
        if not path.startswith(WIKI_PREFIX) or not path.endswith(".md"):
            raise NotFound(f"no page {path!r}: pages are wiki/....md paths")
        try:
            check_path(path)
        except InvalidPath as exc:
            raise BadRequest(f"not a page path: {exc}") from None
        reader = self.reader()
        if at is None:
            commit, blobs = self.head_blobs()
            if commit is None:
                raise NotFound(f"no page {path!r}: the wiki is empty")
            blob_id = blobs.get(path)
            if blob_id is None or reader is None:
                raise NotFound(f"no page {path!r}")
            found = self._parsed.get((blob_id, path))
            if found is not None:
                return found if found.commit == commit else _at(found, commit)
            page = parse(path, blob_id, commit, reader.blob(blob_id))
            self._parsed.put((blob_id, path), page, len(page.text) * 3)
            return page
        if not _COMMIT.fullmatch(at) or reader is None:
            raise BadRequest(f"not a commit id: {at!r}")
        full = reader.resolve_commit(at.lower())
        if full is None:
            raise NotFound(f"unknown revision {at!r}")
        got = reader.blob_at(full, path)
        if got is None:
            raise NotFound(f"no page {path!r} at {full}")
        blob_id, content = got
        found = self._parsed.get((blob_id, path))
        page = found if found is not None else parse(path, blob_id, full, content)
        if found is None:
            self._parsed.put((blob_id, path), page, len(page.text) * 3)
        return _at(page, full)


def _at(page: PageText, commit: str | None) -> PageText:
    """The same parsed page, read at another commit."""
    return PageText(page.path, page.text, page.version, commit, page.meta, page.body, page.title, page.type)
