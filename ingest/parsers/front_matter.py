"""YAML front matter: the ``---`` block that opens markdown files (Hugo, Jekyll, Middleman).

Parsed with PyYAML's safe loader only (no tags, no object construction). Broken YAML never fails the
document: its body is still read, and ``front_matter_error`` in the metadata says what was wrong.
"""

from __future__ import annotations

from typing import Any

import yaml

from ingest.document import plain_metadata
from ingest.sniff import front_matter_end

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Split ``text`` into (front matter as plain metadata, body).

    Returns ``({}, text)`` when there is no closed front matter block.
    """
    end = front_matter_end(text)
    if end is None:
        return {}, text
    block_lines = text[:end].split("\n")
    # first line is the opening "---"; the closing line is the last non-empty piece
    if block_lines and block_lines[-1] == "":
        block_lines.pop()
    block = "\n".join(block_lines[1:-1])
    body = text[end:]
    try:
        loaded = yaml.load(block, Loader=_Loader)  # a safe loader: no tags, no objects
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {"front_matter_error": f"front matter is not valid YAML: {problem}"[:500]}, body
    if not isinstance(loaded, dict):
        return {}, body
    return plain_metadata(loaded), body
