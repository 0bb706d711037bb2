"""The parsed form of a document, and the helpers every parser shares.

``ParsedDocument`` crosses a process boundary (the sandbox returns it as JSON), so its metadata is
always plain JSON: ``plain_metadata`` turns whatever a format's properties hold (YAML front matter,
PDF info, DOCX core properties) into bounded strings, numbers, lists and dicts. That bound is also what
keeps a YAML alias bomb ("billion laughs") from expanding when it is serialised.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

MAX_TITLE = 300
_MAX_ITEMS = 200
_MAX_DEPTH = 4
_MAX_STRING = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Terminal escape sequences (CSI such as ``ESC[31m``, OSC titles, two-byte escapes), removed whole.
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]{0,1000}(?:\x07|\x1b\\)?|[@-Z\\-_])")
_HEADING = re.compile(r"#{1,6}[ \t]+(.+?)[ \t#]*$")
_ITEM = re.compile(r"(?:> )*(?: {2})*(?:- |\d+\. )")


@dataclass(frozen=True)
class ParsedDocument:
    """A document turned into text.

    Attributes:
        text: the content as markdown (front matter removed).
        title: a one-line title; empty when the document has none.
        metadata: plain JSON values (front matter, document properties, page count ...).
    """

    text: str
    title: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "title": self.title, "metadata": self.metadata}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ParsedDocument:
        return cls(text=str(obj["text"]), title=str(obj["title"]), metadata=dict(obj.get("metadata") or {}))


def clean_text(text: str) -> str:
    """Normalise parsed text: ``\\n`` line ends, no NUL or stray control characters, no trailing space."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", ANSI_ESCAPE.sub("", text))
    lines = [line.rstrip() for line in text.split("\n")]
    out = "\n".join(lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", out) + ("\n" if out else "")


def join_blocks(blocks: list[str]) -> str:
    """Join markdown blocks with blank lines, except between consecutive list items (a tight list)."""
    out: list[str] = []
    for i, block in enumerate(blocks):
        if i:
            tight = _ITEM.match(block) and _ITEM.match(blocks[i - 1]) and "\n" not in blocks[i - 1]
            out.append("\n" if tight else "\n\n")
        out.append(block)
    return "".join(out)


def one_line(value: str, limit: int = MAX_TITLE) -> str:
    """Collapse whitespace and control characters to one line of at most ``limit`` characters."""
    value = unicodedata.normalize("NFC", value[: limit * 4])
    value = " ".join(_CONTROL.sub(" ", ANSI_ESCAPE.sub("", value)).split())
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def title_from_text(text: str) -> str:
    """The first markdown heading in the first lines, else the first non-empty line."""
    first = ""
    for raw in text[:100_000].split("\n", 500)[:500]:
        line = raw.strip()
        if not line:
            continue
        m = _HEADING.match(line[:2000])
        if m:
            return one_line(m.group(1))
        if not first:
            first = line
    return one_line(first.lstrip("#>-*| ")) if first else ""


def plain_metadata(value: Any) -> dict[str, Any]:
    """A bounded, JSON-safe copy of a metadata mapping (at most 200 values, depth 4, 2000-char strings).

    Anything that is not a mapping yields ``{}``. Dates become ISO strings, unknown types their ``str``.
    """
    if not isinstance(value, dict):
        return {}
    budget = [_MAX_ITEMS]
    out = _plain(value, 0, budget)
    return out if isinstance(out, dict) else {}


def _plain(value: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        return None
    if value is None or isinstance(value, bool | int | float):
        if isinstance(value, float) and value != value:  # NaN is not JSON
            return None
        return value
    if isinstance(value, str):
        return value[:_MAX_STRING]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value[:_MAX_STRING].decode("utf-8", "replace")
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in list(value.items())[:_MAX_ITEMS]:
            if budget[0] <= 0:
                break
            out[one_line(str(k), 200)] = _plain(v, depth + 1, budget)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = []
        for v in list(value)[:_MAX_ITEMS]:
            if budget[0] <= 0:
                break
            items.append(_plain(v, depth + 1, budget))
        return items
    return str(value)[:_MAX_STRING]
