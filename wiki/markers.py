"""The HTML-comment markers that delimit machine-owned regions of a page.

A region opens with a line that is exactly ``<!-- lore:NAME -->`` or ``<!-- lore:NAME h=HASH -->`` and closes
with a line that is exactly ``<!-- /lore:NAME -->``. ``HASH`` is ``content_hash`` of what the machine wrote
between the markers; a region whose content no longer matches it was edited by a person. Markers are
recognised only as whole lines (no indentation, no trailing spaces), so the same rule holds for the page
model and for the markdown parser that hides them.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "CLOSE_RE",
    "NAME_RE",
    "OPEN_RE",
    "close_marker",
    "content_hash",
    "is_marker_line",
    "open_marker",
]

NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,39}")
OPEN_RE = re.compile(r"<!-- lore:(?P<name>[a-z][a-z0-9_-]{0,39})(?: h=(?P<hash>[0-9a-f]{8}))? -->")
CLOSE_RE = re.compile(r"<!-- /lore:(?P<name>[a-z][a-z0-9_-]{0,39}) -->")
HASH_LEN = 8


def content_hash(content: str) -> str:
    """Return the short hash of a region's content, insensitive to CRLF versus LF line endings."""
    normalized = content.replace("\r\n", "\n")
    return hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LEN]


def open_marker(name: str, hash_: str | None) -> str:
    """Return the opening marker line of region ``name`` (without its line ending)."""
    return f"<!-- lore:{name} h={hash_} -->" if hash_ else f"<!-- lore:{name} -->"


def close_marker(name: str) -> str:
    """Return the closing marker line of region ``name`` (without its line ending)."""
    return f"<!-- /lore:{name} -->"


def is_marker_line(line: str) -> bool:
    """Tell whether ``line`` (with or without its line ending) is a region marker."""
    bare = line.rstrip("\n").removesuffix("\r")
    return bool(OPEN_RE.fullmatch(bare) or CLOSE_RE.fullmatch(bare))
