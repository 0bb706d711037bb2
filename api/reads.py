"""The one read service: what the REST routes, the MCP tools and the web UI all call (DESIGN section 5).

List, read (markdown, HTML, JSON with claims and citations), citations, history, diff, query, and the
ledger's views (entities, sources, disputes, changes). None of the three front ends queries the
database or git on its own.

A page's representations come from memory: the markdown is the blob; its HTML is cached by
``(blob, path, commit, names revision)`` (wikilinks resolve against the pages at HEAD and the
ledger's names); its JSON by ``(blob, path, commit, claims revision)`` (claims and citations come from
the ledger). Each cached body carries a strong ETag computed from its bytes, so the three forms never
share one, and a request whose ``If-None-Match`` names it is answered 304 without a body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Literal
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker

from api.cache import LruCache
from api.errors import BadRequest, NotFound
from api.graph import Edge, GraphView, layout
from api.schemas import CitationOut, ClaimOut, PageListOut, PageOut, PageSummaryOut
from api.wiki_view import PageText, Revision, WikiView, page_type
from search.tiers import Answer, QueryEngine
from store.errors import StoreError
from store.git_plumbing import CommitInfo
from store.git_store import GitStore
from store.queries import (
    Citation,
    ClaimView,
    ContradictionView,
    EntityView,
    SourceDetail,
    SourceView,
    citations,
    count_contradictions,
    entities_by_slug,
    entity_for_page,
    entity_ids_named,
    entity_view,
    list_contradictions,
    list_sources,
    page_claims,
    source_detail,
    source_for_page,
)
from wiki.markdown import extract_footnote_refs, to_html

Format = Literal["md", "html", "json"]
#: ``Cache-Control`` of a read at HEAD (revalidate every time; the ETag makes that cheap) and of a
#: read at a commit id (that file at that commit never changes).
NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"
MEDIA = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8", "json": "application/json"}


def api_href(path: str) -> str:
    """API link to a page (used by HTML rendered through the API)."""
    return "/pages/" + quote(path)


def ui_href(path: str) -> str:
    """UI link to a page."""
    return "/ui/pages/" + quote(path)


def etag_of(body: bytes) -> str:
    """A strong ETag for exactly these bytes."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (or is ``*``); weak comparison, as RFC 9110 asks."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for item in if_none_match.split(","):
        tag = item.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


@dataclass(frozen=True)
class Rendered:
    """One representation of a page: its bytes, media type, ETag and ``Cache-Control``."""

    body: bytes
    media_type: str
    etag: str
    cache_control: str
    page: PageText


@dataclass(frozen=True)
class UiPage:
    """What the web UI shows for one page."""

    page: PageText
    body_html: str
    citations: tuple[Citation, ...]


def page_out(session: Session, page: PageText) -> PageOut:
    """A page as JSON with the ledger's claims and its footnotes' citations."""
    refs = extract_footnote_refs(page.body)
    cites = citations(session, refs)
    claims = page_claims(session, page.path)
    return PageOut(
        path=page.path,
        title=page.title,
        type=page.type,
        version=page.version,
        commit=page.commit,
        front_matter={str(k): v for k, v in page.meta.items()},
        markdown=page.body,
        claims=[ClaimOut.model_validate(c) for c in claims],
        citations={k: CitationOut.model_validate(v) for k, v in cites.items()},
    )


def html_document(title: str, body: str) -> str:
    """A page body as a small standalone HTML document (sanitized body, no script)."""
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head><body><article>{body}</article></body></html>\n"
    )


def check_page_path(path: str) -> None:
    """Refuse anything that is not a ``wiki/....md`` path (as NotFound: no such page can exist)."""
    if not path.startswith("wiki/") or not path.endswith(".md") or ".." in path.split("/"):
        raise NotFound(f"no page {path!r}: pages are wiki/....md paths")


class ReadService:
    """Reads for every front end, from memory where the inputs allow.

    Args:
        store: the git page store (history, diff, log).
        session_factory: ledger sessions.
        engine: the query engine (``GET /query``).
        cache_bytes: bound of the HTML and JSON body caches together.
    """

    def __init__(
        self,
        store: GitStore,
        session_factory: sessionmaker[Session],
        engine: QueryEngine,
        *,
        cache_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.store = store
        self.session_factory = session_factory
        self.engine = engine
        self.wiki = WikiView(store, session_factory)
        self._bodies: LruCache[tuple[str, ...], Rendered] = LruCache(max_bytes=cache_bytes)
        self._ui: LruCache[tuple[str, ...], UiPage] = LruCache(max_bytes=cache_bytes // 4)

    def close(self) -> None:
        """Release the object reader (at app shutdown)."""
        self.wiki.close()

    # --- pages -------------------------------------------------------------------------------------

    def list_pages(
        self, *, type: str | None = None, contains: str | None = None, limit: int = 100, offset: int = 0
    ) -> PageListOut:
        """Pages at HEAD sorted by path, filtered by type and by text in the title or path."""
        commit, paths, titles = self.wiki.pages()
        rows = [PageSummaryOut(path=p, title=titles.get(p, p), type=page_type(p)) for p in paths]
        if type:
            rows = [r for r in rows if r.type == type]
        if contains:
            needle = contains.casefold()
            rows = [r for r in rows if needle in r.title.casefold() or needle in r.path.casefold()]
        return PageListOut(pages=rows[offset : offset + limit], total=len(rows), commit=commit)

    def resolve(self, name: str) -> str | None:
        """The page a path, title, entity name or alias names."""
        if name.startswith("wiki/") and name.endswith(".md"):
            return name
        return self.wiki.resolve(name)

    def read(self, path: str, at: str | None = None) -> PageText:
        """One page at HEAD or at commit ``at``."""
        return self.wiki.read(path, at)

    @staticmethod
    def _key(
        fmt: Format, page: PageText, at: str | None, rev: Revision, links: tuple[str | None, str | None]
    ) -> tuple[str, ...]:
        """What a representation is derived from: its cache key."""
        if fmt == "md":
            return ("md", page.version, page.path, "at" if at is not None else "head")
        if fmt == "html":
            return ("html", page.version, page.path, page.commit or "", links[0] or "", links[1] or "")
        return ("json", page.version, page.path, page.commit or "", rev.claims or "")

    def cached(self, path: str, fmt: Format) -> Rendered | None:
        """A representation at HEAD if it is in memory and still current, else None.

        Costs two ``stat`` calls and one primary-key lookup, so a request can take it without leaving
        the event loop; on None, call :meth:`render` in a worker thread.
        """
        page = self.wiki.cached(path)
        if page is None:
            return None
        rev = self.wiki.revision()
        if rev.commit != page.commit:
            return None
        links = self.wiki.links_ready(rev) if fmt == "html" else (None, None)
        if links is None:
            return None
        return self._bodies.get(self._key(fmt, page, None, rev, links))

    def render(self, path: str, fmt: Format, at: str | None = None) -> Rendered:
        """One representation of a page, from the body cache when its inputs were seen before."""
        rev = self.wiki.revision()
        page = self.wiki.read(path, at)
        cache_control = IMMUTABLE if at is not None and fmt == "md" else NO_CACHE
        links = self.wiki.links_key(rev) if fmt == "html" else (None, None)
        key = self._key(fmt, page, at, rev, links)
        found = self._bodies.get(key)
        if found is not None:
            return found
        if fmt == "md":
            body = page.text.encode("utf-8")
        elif fmt == "html":
            body = html_document(page.title, to_html(page.body, self.wiki.resolver(api_href, rev))).encode("utf-8")
        else:
            with self.session_factory() as session:
                body = page_out(session, page).model_dump_json().encode("utf-8")
        rendered = Rendered(body, MEDIA[fmt], etag_of(body), cache_control, page)
        self._bodies.put(key, rendered, len(body) + 256)
        return rendered

    def page_json(self, path: str) -> str:
        """A page at HEAD as the JSON document ``GET /pages/{path}`` returns."""
        return self.render(path, "json").body.decode("utf-8")

    def ui_page(self, path: str) -> UiPage:
        """A page as the web UI shows it: HTML with UI links and its citations (disputes: ``open_disputes``)."""
        rev = self.wiki.revision()
        page = self.wiki.read(path)
        commit, names = self.wiki.links_key(rev)
        key = ("ui", page.version, path, commit or "", names or "", rev.claims or "")
        found = self._ui.get(key)
        if found is not None:
            return found
        body_html = to_html(page.body, self.wiki.resolver(ui_href, rev))
        refs = extract_footnote_refs(page.body)
        with self.session_factory() as session:
            cites = citations(session, refs)
        view = UiPage(page, body_html, tuple(cites[r] for r in refs if r in cites))
        self._ui.put(key, view, len(body_html) * 2 + len(page.text))
        return view

    # --- links between pages -----------------------------------------------------------------------

    def backlinks(self, path: str) -> list[tuple[str, str]]:
        """``(path, title)`` of the pages at HEAD that link to ``path``: entity and source pages by
        title, then the catalog pages (index, log, contradictions)."""
        rev = self.wiki.revision()
        graph = self.wiki.link_graph(rev)
        _, _, titles = self.wiki.pages(rev)
        found = [(p, titles.get(p, p)) for p in graph.into.get(path, frozenset())]
        return sorted(found, key=lambda t: (page_type(t[0]) == "catalog", t[1].casefold(), t[0]))

    def neighbourhood(self, path: str) -> GraphView:
        """The entity pages one and two links away from ``path``, laid out for drawing.

        Links are the ledger's relations between entities (labelled) and the wikilinks between pages
        in either direction; source and catalog pages are left out (every entity links to its sources).

        Raises:
            NotFound: no page at ``path``.
        """
        page = self.wiki.read(path)
        rev = self.wiki.revision()
        graph = self.wiki.link_graph(rev)
        _, _, titles = self.wiki.pages(rev)
        titles = {**titles, path: page.title}
        edges: list[Edge] = []
        with self.session_factory() as session:

            def around(at: str) -> list[str]:
                near: dict[str, None] = {}
                entity = entity_for_page(session, at)
                if entity is not None:
                    view = entity_view(session, entity)
                    for relation, _name, other in view.links_out:
                        edges.append(Edge(at, other, relation))
                        near[other] = None
                    for relation, _name, other in view.links_in:
                        edges.append(Edge(other, at, relation))
                        near[other] = None
                for other in sorted(graph.out.get(at, ())):
                    edges.append(Edge(at, other))
                    near[other] = None
                for other in sorted(graph.into.get(at, ())):
                    edges.append(Edge(other, at))
                    near[other] = None
                return [p for p in near if p != at and p in titles and page_type(p) not in ("sources", "catalog")]

            inner = around(path)
            outer: dict[str, list[str]] = {}
            for p in inner[:20]:
                outer[p] = [q for q in around(p) if q != path and q not in inner]
        return layout(path, inner, outer, edges, titles)

    def open_disputes(self, path: str) -> list[ContradictionView]:
        """The open disputes on the entity whose page is ``path`` (none for other pages)."""
        with self.session_factory() as session:
            entity = entity_for_page(session, path)
            if entity is None:
                return []
            return list_contradictions(session, status="open", entity_id=entity.id, limit=100)

    def page_source(self, path: str) -> str | None:
        """The id of the source whose summary page is ``path``, or None."""
        with self.session_factory() as session:
            found = source_for_page(session, path)
            return None if found is None else found.id

    def citations(self, refs: Sequence[str]) -> dict[str, Citation]:
        """The citations behind footnote labels (claim ids)."""
        with self.session_factory() as session:
            return citations(session, refs)

    # --- history -----------------------------------------------------------------------------------

    def history(self, path: str, limit: int = 50) -> list[CommitInfo]:
        """Commits that changed a page, newest first.

        Raises:
            NotFound: not a page path, or no commit changed it.
        """
        check_page_path(path)
        commits = self.store.history(path, limit=limit)
        if not commits:
            raise NotFound(f"no history for {path!r}")
        return commits

    def resolve_rev(self, rev: str) -> str:
        """A commit id (or ``HEAD``) from a request, validated before it reaches git."""
        if rev == "HEAD":
            head = self.wiki.head()
            if head is None:
                raise NotFound("the wiki has no commits")
            return head
        if not (4 <= len(rev) <= 64) or any(c not in "0123456789abcdefABCDEF" for c in rev):
            raise BadRequest(f"not a commit id: {rev!r}")
        return rev.lower()

    def diff(self, path: str, a: str | None = None, b: str | None = None) -> tuple[str, str, str]:
        """(a, b, unified diff) of a page between two commits; defaults compare its last two changes.

        Raises:
            NotFound: no history, or an unknown revision.
            BadRequest: a revision that is not a commit id.
        """
        check_page_path(path)
        if a is None or b is None:
            commits = self.store.history(path, limit=2)
            if not commits:
                raise NotFound(f"no history for {path!r}")
            b = b or commits[0].id
            a = a or (commits[1].id if len(commits) > 1 else (commits[0].parents[0] if commits[0].parents else b))
        try:
            a_id, b_id = (self.resolve_rev(r) for r in (a, b))
            text = self.store.diff(path, a_id, b_id)
        except StoreError as exc:
            raise NotFound(f"unknown revision: {exc}") from None
        return a_id, b_id, text

    def changes(self, limit: int = 50) -> list[CommitInfo]:
        """Recent commits on the wiki branch."""
        return self.store.log(limit=limit)

    # --- query -------------------------------------------------------------------------------------

    def query(self, question: str, k: int = 5, tier: int | None = None, *, mode: str = "default") -> Answer:
        """Answer a question (see :class:`search.tiers.QueryEngine`): ``tier`` asks one tier alone;
        ``mode="wiki"`` ranks only the wiki's own evidence (entity pages, sections, claims)."""
        return self.engine.answer(question, k, tier=tier, mode=mode)

    # --- the ledger --------------------------------------------------------------------------------

    def entity(self, slug: str, type: str | None = None) -> tuple[EntityView, list[ClaimView]]:
        """An entity by slug with its active and disputed claims.

        Raises:
            NotFound: no such entity.
            BadRequest: several entity types use the slug and ``type`` was not given.
        """
        with self.session_factory() as session:
            found = entities_by_slug(session, slug, type)
            if not found:
                raise NotFound(f"no entity {slug!r}" + (f" of type {type!r}" if type else ""))
            if len(found) > 1:
                raise BadRequest(f"{slug!r} names entities of types {[e.type for e in found]}; pass ?type=")
            view = entity_view(session, found[0])
            return view, page_claims(session, view.page_path, statuses=("active", "disputed"))

    def contradictions(
        self,
        status: str | None = "open",
        limit: int = 50,
        offset: int = 0,
        *,
        entity: str | None = None,
        decision: str | None = None,
        with_total: bool = False,
    ) -> Any:
        """Disputes (None: every status), newest first; ``entity`` is a name, alias or slug. With
        ``with_total``, returns ``(rows, total matching)``."""
        with self.session_factory() as session:
            entity_ids: list[int | None] = [None]
            if entity:
                entity_ids = list(entity_ids_named(session, entity)) or []
            rows: list[ContradictionView] = []
            total = 0
            for entity_id in entity_ids:
                rows += list_contradictions(session, status=status, limit=limit + offset, offset=0,
                                            entity_id=entity_id, decision=decision)
                total += count_contradictions(session, status=status, entity_id=entity_id, decision=decision)
        rows.sort(key=lambda r: (-r.created_at.timestamp(), r.id))
        rows = rows[offset : offset + limit]
        return (rows, total) if with_total else rows

    def dispute(self, dispute_id: int) -> ContradictionView:
        """One dispute by id, whatever its status.

        Raises:
            NotFound: no such dispute.
        """
        with self.session_factory() as session:
            found = list_contradictions(session, status=None, dispute_ids=[dispute_id], limit=1)
        if not found:
            raise NotFound(f"no dispute {dispute_id}")
        return found[0]

    def sources(self, status: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[SourceView], int]:
        with self.session_factory() as session:
            return list_sources(session, status=status, limit=limit, offset=offset)

    def source(self, source_id: str) -> SourceDetail:
        """A source's status, claims, pages touched and jobs.

        Raises:
            NotFound: no such source.
        """
        with self.session_factory() as session:
            detail = source_detail(session, source_id.lower())
        if detail is None:
            raise NotFound(f"no source {source_id!r}")
        return detail
