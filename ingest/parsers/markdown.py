"""Markdown, with or without YAML front matter.

The text is kept as written (it is what claims quote), except for what is never content: ``<script>``,
``<style>``, ``<iframe>`` and similar raw-HTML blocks are cut out. Links, including ``javascript:``
ones, stay as text; pages are sanitised when they are rendered, and nothing here ever runs.
"""

from __future__ import annotations

import re

from ingest.document import ParsedDocument, clean_text, one_line, title_from_text
from ingest.errors import ParseFailed
from ingest.parsers.front_matter import split_front_matter
from ingest.sniff import decode_text

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ACTIVE_TAG = re.compile(
    r"<(/?)(script|style|iframe|object|embed|template|noscript)\b[^<>]{0,2000}>?", re.IGNORECASE
)


def parse(data: bytes) -> ParsedDocument:
    """Parse markdown; front matter becomes metadata and its ``title`` the title.

    Raises:
        ParseFailed: the text is not decodable or has no content besides front matter.
    """
    text, encoding = decode_text(data)
    return parse_markdown_text(text, encoding)


def parse_markdown_text(text: str, encoding: str, *, label: str = "Markdown") -> ParsedDocument:
    """Parse already decoded markdown (shared with the ERB flavour)."""
    metadata, body = split_front_matter(text)
    return finish_markdown(metadata, body, encoding, label=label)


def finish_markdown(metadata: dict, body: str, encoding: str, *, label: str = "Markdown") -> ParsedDocument:
    """Clean a markdown body and pick its title (front matter ``title`` first)."""
    body = clean_text(strip_active_blocks(body))
    if not body.strip():
        raise ParseFailed(f"{label} file has no text" + (" besides its front matter" if metadata else ""))
    fm_title = metadata.get("title")
    title = one_line(str(fm_title)) if isinstance(fm_title, str | int | float) and str(fm_title).strip() else ""
    metadata = {**metadata, "encoding": encoding}
    return ParsedDocument(text=body, title=title or title_from_text(body), metadata=metadata)


def strip_active_blocks(text: str) -> str:
    """Remove script-like raw-HTML elements with their content, outside fenced code blocks.

    An unclosed element runs to the end of its stretch of non-code text. One left-to-right pass over
    lines and tag matches, so it is linear in the input.
    """
    out: list[str] = []
    prose: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        marker = _FENCE.match(line)
        if fence is None and marker:
            out.append(_strip_run("".join(prose)))
            prose = []
            fence = marker.group(1)[0] * 3
            out.append(line)
        elif fence is not None:
            out.append(line)
            if marker and marker.group(1).startswith(fence):
                fence = None
        else:
            prose.append(line)
    out.append(_strip_run("".join(prose)))
    return "".join(out)


def _strip_run(text: str) -> str:
    out: list[str] = []
    pos = 0
    open_tag: str | None = None
    for m in _ACTIVE_TAG.finditer(text):
        closing, name = m.group(1) == "/", m.group(2).lower()
        if open_tag is None:
            out.append(text[pos : m.start()])
            pos = m.end()
            if not closing:
                open_tag = name
        elif closing and name == open_tag:
            open_tag = None
            pos = m.end()
        else:
            pos = m.end()
    if open_tag is None:
        out.append(text[pos:])
    return "".join(out)
