"""Grounding: a claim stands only on a quote that really occurs in its source.

Models copy quotes imperfectly: they drop markdown emphasis, fold whitespace, change quote marks. The
matcher therefore compares a *normalised* view of both texts (markdown markup removed, typographic
quotes and dashes folded, whitespace collapsed, case folded) while keeping a map back to offsets in the
original text, so the span it returns points at the real bytes of the source. What it never does is
accept a paraphrase: every normalised character of the quote must be there, in order, contiguous.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u00a0": " ",
        "`": "",
        "*": "",
        "_": "",
    }
)

MIN_QUOTE_CHARS = 8


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def _normalise_with_map(text: str) -> tuple[str, list[int]]:
    """Normalised text plus, for each of its characters, the offset in ``text`` it came from."""
    out: list[str] = []
    where: list[int] = []
    prev_space = True
    for i, ch in enumerate(text):
        folded = unicodedata.normalize("NFKC", ch).translate(_FOLD).casefold()
        for c in folded:
            if c.isspace():
                if prev_space:
                    continue
                out.append(" ")
                where.append(i)
                prev_space = True
            else:
                out.append(c)
                where.append(i)
                prev_space = False
    if out and out[-1] == " ":
        out.pop()
        where.pop()
    return "".join(out), where


def normalise(text: str) -> str:
    """The comparison form used for quotes, names and claim keys."""
    return _normalise_with_map(text)[0]


class SourceText:
    """A source's text prepared once for many quote look-ups."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._norm, self._map = _normalise_with_map(text)

    def find(self, quote: str) -> Span | None:
        """The span of ``quote`` in the source, or None when it does not occur."""
        q = normalise(quote).strip(" \"'.,;:")
        if len(q) < MIN_QUOTE_CHARS:
            return None
        pos = self._norm.find(q)
        if pos < 0:
            return None
        start = self._map[pos]
        end = self._map[pos + len(q) - 1] + 1
        return Span(start, end)

    def contains_name(self, name: str) -> bool:
        """Whether an entity name occurs in the source as a whole word (case-insensitive)."""
        n = normalise(name)
        if len(n) < 2:
            return False
        return re.search(r"(?<!\w)" + re.escape(n) + r"(?!\w)", self._norm) is not None


def claim_key(source_id: str, text: str) -> str:
    """The idempotency key of a claim: sha256 of its source and normalised text."""
    return hashlib.sha256(f"{source_id}\n{normalise(text)}".encode()).hexdigest()


def claim_id(entity_id: int, key: str) -> str:
    """A stable, short footnote id for the claim ``(entity, key)``."""
    return "c" + hashlib.sha256(f"{entity_id}:{key}".encode()).hexdigest()[:11]


_DIGITS = re.compile(r"\d+")


def digit_signature(name: str) -> tuple[str, ...]:
    """The numbers in a name: names that differ here (versions, dates) never merge automatically."""
    return tuple(_DIGITS.findall(name))
