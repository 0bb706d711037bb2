"""HTML: the main content of a page as markdown, readability-style, with lxml only.

The content root is ``<main>`` (or ``role="main"``), else a single ``<article>``, else ``<body>``
without its page header, footer, navigation and asides. Scripts, styles, frames, forms, embedded
objects and hidden elements are dropped with their content; nothing is fetched or executed (lxml's
HTML parser does not load external resources or expand custom entities). The tree is walked with
``iterwalk``, not recursion, so deep nesting cannot exhaust the stack; libxml2 itself caps the depth.

Links keep their target only for ``http``, ``https`` and ``mailto``; ``javascript:`` and relative
targets keep just their text.
"""

from __future__ import annotations

import re
from typing import Any

import lxml.html
from lxml import etree

from ingest.document import ParsedDocument, clean_text, join_blocks, one_line, title_from_text
from ingest.errors import ParseFailed
from ingest.sniff import decode_text

_DROP = frozenset(
    "script style noscript template iframe frame frameset object embed applet svg math canvas form "
    "button select input textarea nav aside head link meta video audio dialog map".split()
)
_PAGE_CHROME = frozenset({"header", "footer"})
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_BLOCKS = frozenset(
    "p div section article main header footer dl dt dd figure figcaption address details summary "
    "center body caption".split()
)
_SAFE_SCHEMES = ("http://", "https://", "mailto:")
# A DOCTYPE, with an internal subset if any: libxml2's HTML parser would show the subset as text.
_DOCTYPE = re.compile(r"<!DOCTYPE[^\[>]{0,2000}(?:\[[^\]]*\][^>]{0,100})?>", re.IGNORECASE)


def parse(data: bytes) -> ParsedDocument:
    """Extract the main content of an HTML page as markdown.

    Raises:
        ParseFailed: the page cannot be parsed or holds no readable text.
    """
    text, encoding = decode_text(data)
    text = _DOCTYPE.sub("", text, count=1)
    parser = lxml.html.HTMLParser(
        encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True, recover=True
    )
    try:
        doc = lxml.html.document_fromstring(text.encode("utf-8"), parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        raise ParseFailed(f"HTML could not be read: {exc}") from None
    metadata = _metadata(doc)
    metadata["encoding"] = encoding
    root, whole_body = _content_root(doc)
    body = clean_text(_Markdown(whole_body).convert(root))
    if not body.strip():
        raise ParseFailed("HTML page has no readable text")
    title = metadata.pop("title", "") or _first_heading(root) or title_from_text(body)
    return ParsedDocument(text=body, title=one_line(title), metadata=metadata)


def _content_root(doc: Any) -> tuple[Any, bool]:
    mains = doc.xpath("//main | //*[@role='main']")
    if mains:
        return mains[0], False
    articles = doc.xpath("//article")
    if len(articles) == 1:
        return articles[0], False
    body = doc.find("body")
    return (body if body is not None else doc), True


def _metadata(doc: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    titles = doc.xpath("//title")
    og = doc.xpath("//meta[@property='og:title']/@content")
    title = (titles[0].text_content() if titles else "") or (og[0] if og else "")
    if title.strip():
        meta["title"] = one_line(title)
    for key, xp in (
        ("description", "//meta[@name='description']/@content"),
        ("author", "//meta[@name='author']/@content"),
        ("canonical", "//link[@rel='canonical']/@href"),
        ("lang", "/html/@lang"),
    ):
        found = doc.xpath(xp)
        if found and str(found[0]).strip():
            meta[key] = one_line(str(found[0]), 1000)
    return meta


def _first_heading(root: Any) -> str:
    for el in root.iter("h1", "h2"):
        text = _words(el)
        if text:
            return text
    return ""


def _hidden(el: Any) -> bool:
    if el.get("hidden") is not None or el.get("aria-hidden") == "true":
        return True
    style = (el.get("style") or "").replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style


def _squash(text: str) -> str:
    return " ".join(text.split())


def _words(el: Any) -> str:
    """The element's text with its descendants' texts kept apart by spaces."""
    return " ".join(" ".join(el.itertext()).split())


class _Markdown:
    """One iterative pass over an element tree, writing markdown blocks."""

    def __init__(self, drop_page_chrome: bool) -> None:
        self.drop = _DROP | _PAGE_CHROME if drop_page_chrome else _DROP
        self.blocks: list[str] = []
        self.inline: list[str] = []
        self.prefix = ""
        self.quote = 0
        self.lists: list[list[int]] = []  # [ordered (0/1), counter]
        self.links: list[tuple[int, str | None]] = []

    def convert(self, root: Any) -> str:
        skipped: set[int] = set()
        walker = etree.iterwalk(root, events=("start", "end"))
        for event, el in walker:
            tag = el.tag.lower() if isinstance(el.tag, str) else ""
            if event == "start":
                if not tag or tag in self.drop or _hidden(el):
                    skipped.add(id(el))
                    walker.skip_subtree()
                    continue
                if self._start(el, tag):
                    skipped.add(id(el))
                    walker.skip_subtree()
                    continue
                if el.text:
                    self.inline.append(el.text)
            else:
                if id(el) in skipped:
                    skipped.discard(id(el))
                else:
                    self._end(tag)
                if el is not root and el.tail:
                    self.inline.append(el.tail)
        self._flush()
        return join_blocks(self.blocks)

    def _start(self, el: Any, tag: str) -> bool:
        """Open ``el``; True when it was written whole and its subtree must be skipped."""
        if tag == "pre":
            self._flush()
            code = el.text_content().strip("\n")
            fence = "````" if "```" in code else "```"
            self.blocks.append(self._quoted(f"{fence}\n{code}\n{fence}"))
            return True
        if tag == "table":
            self._flush()
            table = _table(el)
            if table:
                self.blocks.append(self._quoted(table))
            return True
        if tag in ("br", "hr"):
            self._flush()
            if tag == "hr":
                self.blocks.append("---")
            return False
        if tag == "img":
            alt = el.get("alt")
            if alt:
                self.inline.append(f" {alt} ")
            return False
        if tag in _HEADINGS:
            self._flush()
            self.prefix = "#" * _HEADINGS[tag] + " "
        elif tag in ("ul", "ol"):
            self._flush()
            self.lists.append([1 if tag == "ol" else 0, 0])
        elif tag == "li":
            self._flush()
            if self.lists:
                self.lists[-1][1] += 1
                ordered, count = self.lists[-1]
                marker = f"{count}. " if ordered else "- "
                self.prefix = "  " * (len(self.lists) - 1) + marker
            else:
                self.prefix = "- "
        elif tag == "blockquote":
            self._flush()
            self.quote += 1
        elif tag in _BLOCKS:
            self._flush()
        elif tag == "a":
            href = (el.get("href") or "").strip()
            safe = href if href.lower().startswith(_SAFE_SCHEMES) else None
            self.links.append((len(self.inline), safe))
        elif tag == "code":
            self.inline.append("`")
        return False

    def _end(self, tag: str) -> None:
        if tag == "a" and self.links:
            start, href = self.links.pop()
            text = _squash("".join(self.inline[start:]))
            if href and text:
                target = href.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
                label = text.replace("[", "\\[").replace("]", "\\]")
                self.inline[start:] = [f"[{label}]({target})"]
        elif tag == "code":
            self.inline.append("`")
        elif tag in ("ul", "ol"):
            self._flush()
            if self.lists:
                self.lists.pop()
        elif tag == "blockquote":
            self._flush()
            self.quote = max(0, self.quote - 1)
        elif tag in _HEADINGS or tag == "li" or tag in _BLOCKS:
            self._flush()

    def _flush(self) -> None:
        text = _squash("".join(self.inline))
        self.inline = []
        self.links = [(0, href) for _, href in self.links]  # an open link continues in the next block
        if text:
            self.blocks.append(self._quoted(self.prefix + text))
        self.prefix = ""

    def _quoted(self, block: str) -> str:
        if not self.quote:
            return block
        lead = "> " * self.quote
        return "\n".join(lead + line for line in block.split("\n"))


def _table(el: Any) -> str:
    rows: list[list[str]] = []
    for tr in el.iter("tr"):
        cells = [
            _words(cell).replace("|", "\\|")
            for cell in tr
            if isinstance(cell.tag, str) and cell.tag.lower() in ("td", "th")
        ]
        if any(cells):
            rows.append(cells)
    if not rows:
        return _words(el)
    width = max(len(r) for r in rows)
    lines = []
    for i, row in enumerate(rows):
        lines.append("| " + " | ".join(row + [""] * (width - len(row))) + " |")
        if i == 0:
            lines.append("|" + " --- |" * width)
    return "\n".join(lines)
