"""Markdown for Lore pages: ``[[wikilinks]]``, keyed footnotes, hidden region markers, safe HTML.

``wikilinks_plugin`` adds one inline rule and one render rule to a ``MarkdownIt`` parser, in the shape of
the mdit-py-plugins plugins: ``[[Target]]``, ``[[Target|label]]``, ``[[Target#Section]]`` and
``[[#Section]]`` become a ``wikilink`` token whose ``meta`` holds ``target``, ``section`` and ``label``.
``markers_plugin`` turns region marker lines (see ``wiki.markers``) into hidden block tokens, so they end
the paragraph before them and never show as text (``js-default`` escapes raw HTML).

Links and footnotes are read from the token stream, never by a regex over raw text, so a ``[[link]]`` in a
code span or block is no link. ``to_html`` renders with ``MarkdownIt("js-default")`` and sanitizes the
result with nh3; model output and document text are untrusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.normalize_url import normalizeLink, validateLink
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin

from wiki.markers import is_marker_line
from wiki.sanitize import sanitize_html
from wiki.slug import slugify

__all__ = [
    "REF_MARK",
    "RESOLVE_ENV_KEY",
    "FootnoteDef",
    "TextUnit",
    "WikiLink",
    "extract_footnote_defs",
    "extract_footnote_refs",
    "extract_wikilinks",
    "heading_anchor",
    "markers_plugin",
    "parser",
    "text_units",
    "to_html",
    "wikilinks_plugin",
]

RESOLVE_ENV_KEY = "lore_resolve"
MAX_LINK_LEN = 500


@dataclass(frozen=True)
class WikiLink:
    """One ``[[...]]`` link. ``target`` is empty for a link to a section of the same page."""

    target: str
    label: str | None = None
    section: str | None = None


@dataclass(frozen=True)
class FootnoteDef:
    """One footnote definition ``[^label]: text``; ``links`` are the wikilinks inside it."""

    label: str
    text: str
    links: tuple[WikiLink, ...] = ()


# --- the wikilink rule -----------------------------------------------------------------------------


def _split_link(inner: str) -> WikiLink | None:
    if "|" in inner:
        head, label = inner.split("|", 1)
        head = head.removesuffix("\\")  # "[[a\|b]]" inside a table cell
        label_s: str | None = label.strip() or None
    else:
        head, label_s = inner, None
    target, _, section = head.partition("#")
    target, section = target.strip(), section.strip()
    if not target and not section:
        return None
    return WikiLink(target=target, label=label_s, section=section or None)


def _wikilink_rule(state: StateInline, silent: bool) -> bool:
    """Parse ``[[target#section|label]]`` at the current position."""
    src, pos = state.src, state.pos
    if not src.startswith("[[", pos):
        return False
    end = src.find("]]", pos + 2, state.posMax)
    if end < 0 or end + 2 > state.posMax:
        return False
    inner = src[pos + 2 : end]
    if len(inner) > MAX_LINK_LEN or "\n" in inner or "[" in inner or "]" in inner:
        return False
    link = _split_link(inner)
    if link is None:
        return False
    if not silent:
        token = state.push("wikilink", "", 0)
        token.markup = "[["
        token.meta = {"target": link.target, "section": link.section, "label": link.label}
        token.content = link.label or " > ".join(p for p in (link.target, link.section) if p)
    state.pos = end + 2
    return True


def heading_anchor(text: str) -> str:
    """Return the HTML id of a heading, the same one ``[[Page#text]]`` links to."""
    return slugify(text)


def _render_wikilink(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    target: str = token.meta["target"]
    section: str | None = token.meta["section"]
    label = escapeHtml(token.content)
    resolve = env.get(RESOLVE_ENV_KEY) if isinstance(env, dict) else None
    href: str | None
    if not target:
        href = ""
    else:
        href = resolve(target) if resolve is not None else None
    if href is not None:
        href = normalizeLink(href)
        if not validateLink(href):
            href = None
    if href is None:
        title = escapeHtml(f"No page named {target}")
        return f'<a class="wikilink wikilink-broken" title="{title}">{label}</a>'
    if section:
        href = f"{href}#{heading_anchor(section)}"
    return f'<a class="wikilink" href="{escapeHtml(href)}">{label}</a>'


def wikilinks_plugin(md: MarkdownIt) -> None:
    """Add the ``wikilink`` inline rule (before ``link``) and its render rule to ``md``.

    At render time the target is resolved by the callable found in ``env[RESOLVE_ENV_KEY]``
    (``target -> href | None``); without one, or when it returns None, the link renders with the class
    ``wikilink-broken`` and no ``href``.
    """
    md.inline.ruler.before("link", "wikilink", _wikilink_rule)
    md.add_render_rule("wikilink", _render_wikilink)


# --- region markers --------------------------------------------------------------------------------


def _marker_rule(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """Recognise a whole-line region marker (never indented, never inside a container)."""
    begin = state.bMarks[start_line]
    if begin > 0 and state.src[begin - 1] != "\n":
        return False  # inside a blockquote or another container
    line = state.src[begin : state.eMarks[start_line]]
    if not is_marker_line(line):
        return False
    if silent:
        return True
    token = state.push("lore_marker", "", 0)
    token.hidden = True
    token.block = True
    token.content = line
    token.map = [start_line, start_line + 1]
    state.line = start_line + 1
    return True


def markers_plugin(md: MarkdownIt) -> None:
    """Hide region marker lines: they become ``lore_marker`` tokens that render as nothing."""
    md.block.ruler.before(
        "table", "lore_marker", _marker_rule, {"alt": ["paragraph", "reference", "blockquote", "list"]}
    )
    md.add_render_rule("lore_marker", lambda self, tokens, idx, options, env: "")


# --- parsers ---------------------------------------------------------------------------------------


def parser() -> MarkdownIt:
    """Return a new ``js-default`` parser with front matter, keyed footnotes, wikilinks, hidden markers
    and heading anchors. ``parser().render(text, env)`` gives unsanitized HTML; use ``to_html``."""
    md = MarkdownIt("js-default")
    md.use(front_matter_plugin)
    md.use(markers_plugin)
    md.use(footnote_plugin, inline=False)
    md.use(wikilinks_plugin)
    md.use(anchors_plugin, min_level=1, max_level=6, slug_func=heading_anchor)
    return md


@lru_cache(maxsize=1)
def _analysis_parser() -> MarkdownIt:
    # Footnote definitions stay in place and every [^ref] matches, defined or not, so lint sees them.
    md = MarkdownIt("js-default")
    md.use(front_matter_plugin)
    md.use(markers_plugin)
    md.use(footnote_plugin, inline=False, move_to_end=False, always_match_refs=True)
    md.use(wikilinks_plugin)
    return md


@lru_cache(maxsize=1)
def _html_parser() -> MarkdownIt:
    return parser()


def _walk(tokens: Sequence[Token]) -> Iterator[Token]:
    for token in tokens:
        yield token
        if token.children:
            yield from _walk(token.children)


def _tokens(text: str) -> list[Token]:
    return _analysis_parser().parse(text, {})


def _link_of(token: Token) -> WikiLink:
    return WikiLink(target=token.meta["target"], label=token.meta["label"], section=token.meta["section"])


def extract_wikilinks(text: str) -> list[WikiLink]:
    """Return the wikilinks of a markdown text in document order, footnote definitions included.

    Links inside code spans, code blocks and front matter are not links and are not returned.
    """
    return [_link_of(t) for t in _walk(_tokens(text)) if t.type == "wikilink"]


def extract_footnote_refs(text: str) -> list[str]:
    """Return the labels of the ``[^label]`` references of a text, each once, in order of first use.

    References match whether or not the page defines them (lint reports the undefined ones).
    """
    seen: dict[str, None] = {}
    for token in _walk(_tokens(text)):
        if token.type == "footnote_ref" and "label" in token.meta:
            seen.setdefault(token.meta["label"], None)
    return list(seen)


def extract_footnote_defs(text: str) -> list[FootnoteDef]:
    """Return the footnote definitions of a text in document order (a repeated label appears twice)."""
    defs: list[FootnoteDef] = []
    label: str | None = None
    parts: list[str] = []
    links: list[WikiLink] = []
    for token in _walk(_tokens(text)):
        if token.type == "footnote_reference_open":
            label, parts, links = token.meta["label"], [], []
        elif token.type == "footnote_reference_close" and label is not None:
            defs.append(FootnoteDef(label=label, text="\n".join(parts), links=tuple(links)))
            label = None
        elif label is not None and token.type == "inline":
            parts.append(token.content)
        elif label is not None and token.type == "wikilink":
            links.append(_link_of(token))
    return defs


REF_MARK = "\ufffc"


@dataclass(frozen=True)
class TextUnit:
    """The inline text of one block: ``kind`` is ``heading``, ``item`` (list item), ``quote`` or
    ``paragraph``; footnote references appear in ``text`` as ``REF_MARK`` and their labels in ``refs``."""

    kind: str
    text: str
    refs: tuple[str, ...]


def _inline_text(token: Token) -> tuple[str, tuple[str, ...]]:
    out: list[str] = []
    refs: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            out.append(child.content.replace(REF_MARK, ""))
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif child.type == "wikilink":
            out.append(child.content)
        elif child.type == "footnote_ref":
            out.append(REF_MARK)
            refs.append(child.meta.get("label", ""))
    return "".join(out), tuple(refs)


def text_units(text: str) -> list[TextUnit]:
    """Return the inline text of every heading, list item, quote and paragraph, in order.

    Footnote definitions are not included (they are citations, not statements).
    """
    units: list[TextUnit] = []
    items = quotes = footnotes = 0
    previous: Token | None = None
    for token in _tokens(text):
        if token.type in ("list_item_open", "list_item_close"):
            items += token.nesting
        elif token.type in ("blockquote_open", "blockquote_close"):
            quotes += token.nesting
        elif token.type in ("footnote_reference_open", "footnote_reference_close"):
            footnotes += token.nesting
        elif token.type == "inline" and not footnotes:
            kind = "paragraph"
            if previous is not None and previous.type == "heading_open":
                kind = "heading"
            elif items:
                kind = "item"
            elif quotes:
                kind = "quote"
            body, refs = _inline_text(token)
            units.append(TextUnit(kind, body, refs))
        previous = token
    return units


def to_html(text: str, resolve: Callable[[str], str | None]) -> str:
    """Render page markdown to sanitized HTML.

    Args:
        text: page text; front matter and region markers are not shown.
        resolve: maps a wikilink target to an href, or None when no page has that name (the link then
            renders with the class ``wikilink-broken``).

    Returns:
        HTML safe to embed in a page (a strict Content-Security-Policy remains the caller's job).
    """
    html = _html_parser().render(text, {RESOLVE_ENV_KEY: resolve})
    return sanitize_html(html)
