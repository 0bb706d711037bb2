"""Writing markdown from untrusted text: escaped inline text, defused prose, well-formed wikilinks.

Claim text, quotes, titles and model prose are data. What this module returns can be placed in a page
without starting a link, an image, HTML, a footnote definition or a region marker the text did not mean.
"""

from __future__ import annotations

import re

from wiki.markers import is_marker_line

__all__ = ["escape_inline", "safe_prose", "wikilink"]

_FORBIDDEN_IN_LINK = re.compile(r"[\[\]\n\r|#]")
_ESCAPE_ANYWHERE = re.compile(r"([\\`*_\[\]<>~&|$])")
_BLOCK_START = re.compile(r"^(\s*)([#+=>-]|\d+[.)])")


def escape_inline(text: str) -> str:
    """Make untrusted text safe to place inside one markdown line (a bullet, a quote).

    Line breaks become spaces and markdown punctuation is backslash-escaped, so the text cannot start a
    link, an image, a wikilink, a footnote, HTML, code or a new block; it renders as the same characters.
    """
    flat = " ".join(text.split())
    flat = _ESCAPE_ANYWHERE.sub(r"\\\1", flat)
    match = _BLOCK_START.match(flat)
    if match:
        lead, token = match.group(1), match.group(2)
        head = f"{token[:-1]}\\{token[-1]}" if token[0].isdigit() else f"\\{token}"
        flat = lead + head + flat[match.end() :]
    return flat


_FOOTNOTE_DEF_START = re.compile(r"^(\s{0,3})\[(?=\^[^\]]*\]:)")


def safe_prose(text: str) -> str:
    """Prepare untrusted markdown prose (a model-written summary) for a machine region.

    Markdown stays markdown, but a line that would read as a region marker or as a footnote definition
    (which could replace a citation's source) is escaped, line endings become ``\\n``, trailing spaces and
    surrounding blank lines go.
    """
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out = []
    for line in lines:
        if is_marker_line(line):
            line = "\\" + line
        out.append(_FOOTNOTE_DEF_START.sub(r"\1\\[", line))
    return "\n".join(out).strip("\n")


def wikilink(target: str, label: str | None = None, section: str | None = None) -> str:
    """Return ``[[target#section|label]]`` with characters that would break the link replaced by spaces."""

    def clean(part: str) -> str:
        return " ".join(_FORBIDDEN_IN_LINK.sub(" ", part).split())

    body = clean(target)
    if section:
        body += "#" + clean(section)
    if label is not None and clean(label) and clean(label) != clean(target):
        body += "|" + clean(label)
    return f"[[{body}]]"
