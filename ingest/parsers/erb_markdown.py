"""Markdown with ERB tags, as in the ``.html.md.erb`` runbooks of Middleman sites.

YAML front matter, then markdown in which ``<%= current_page.data.title %>`` stands for front matter
values. Those references are filled in from the front matter; every other ERB tag is removed. Nothing is
ever evaluated: the tags are text to us.
"""

from __future__ import annotations

import re

from ingest.document import ParsedDocument
from ingest.parsers.front_matter import split_front_matter
from ingest.parsers.markdown import finish_markdown
from ingest.sniff import decode_text

_ERB = re.compile(r"<%([=#-]?)([^%]{0,4000})-?%>")
_DATA_REF = re.compile(r"\s*current_page\.data\.([A-Za-z_][A-Za-z0-9_]{0,100})\s*-?")


def parse(data: bytes) -> ParsedDocument:
    """Parse ERB-flavoured markdown.

    Raises:
        ParseFailed: the text is not decodable or has no content.
    """
    text, encoding = decode_text(data)
    metadata, body = split_front_matter(text)
    body = _ERB.sub(lambda m: _substitute(m, metadata), body)
    return finish_markdown(metadata, body, encoding, label="Markdown (ERB)")


def _substitute(m: re.Match[str], metadata: dict) -> str:
    if m.group(1) != "=":
        return ""  # <% code %>, <%# comment %>, <%- trim %>: dropped, never run
    ref = _DATA_REF.fullmatch(m.group(2))
    if ref is None:
        return ""
    value = metadata.get(ref.group(1))
    return str(value) if isinstance(value, str | int | float) else ""
