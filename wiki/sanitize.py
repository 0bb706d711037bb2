"""Sanitizing rendered HTML with nh3: a conservative allow-list, nothing that runs code.

Markdown is rendered with ``js-default`` (raw HTML off, dangerous link schemes refused); this is the second
layer: only listed tags and attributes survive, classes and ids are filtered to the ones the renderer
makes, and URLs keep only the http, https and mailto schemes or are relative.
"""

from __future__ import annotations

import re

import nh3

__all__ = ["sanitize_html"]

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "img", "li", "ol", "p", "pre", "s", "section", "span", "strong", "sub", "sup", "table", "tbody",
    "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title", "class", "id"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "li": {"id", "class"},
    "sup": {"class"},
    "section": {"class"},
    "hr": {"class"},
    "ol": {"class", "start"},
    "th": {"style"},
    "td": {"style"},
    **{f"h{n}": {"id"} for n in range(1, 7)},
}
_CLASSES = {
    "wikilink", "wikilink-broken", "footnote-ref", "footnote-backref", "footnote-item", "footnotes",
    "footnotes-list", "footnotes-sep",
}  # fmt: skip
_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+-]{1,40}")
_SAFE_ID = re.compile(r"(fn|fnref)[0-9:]{1,12}|[a-z0-9][a-z0-9._-]{0,99}")


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    if attr == "class":
        kept = [c for c in value.split() if c in _CLASSES or (tag == "code" and _LANGUAGE_CLASS.fullmatch(c))]
        return " ".join(kept) or None
    if attr == "id":
        return value if _SAFE_ID.fullmatch(value) else None
    return value


def sanitize_html(html: str) -> str:
    """Sanitize rendered HTML: a conservative tag and attribute set, no scripts or event handlers, and
    only http, https, mailto and relative URLs."""
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_filter_attribute,
        url_schemes={"http", "https", "mailto"},
        filter_style_properties={"text-align"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
