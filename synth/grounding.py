"""Grounding: a claim stands only on a quote that really occurs in its source.

Models copy quotes imperfectly: they drop markdown emphasis, fold whitespace, change quote marks, undo a
tokenizer's spacing (``people , 1,575`` becomes ``people, 1,575``), drop an accent or a word, or elide
the middle of a long sentence with ``...``. :func:`locate` finds the span of the source a quote stands
for, in three steps, and says how it matched:

1. ``exact``: the quote's folded characters occur contiguously in the folded source (markdown markup
   removed, typographic quotes and dashes folded, whitespace collapsed, case folded);
2. ``tokens``: the quote's tokens occur as a contiguous run of the source's tokens. Tokens are runs of
   letters or numbers after NFKC, case folding and removing diacritics, so punctuation and spacing no
   longer matter; ``n't`` is its own token (``not``) and ``1,575`` is one number;
3. ``fuzzy`` / ``elided``: the quote's tokens in order within a window of the source, with at most
   ``MAX_SKIPPED`` source tokens skipped (never a number or a negation) and at most one quote token
   missing from the source (a stop word inside the quote, never beside a skipped source token: that
   would be a substituted word); ``...`` splits the quote into segments matched in order.

What it never accepts is a changed number, name or negation: a token is matched or skipped, never
substituted. What is stored and shown is the source's own span, not the model's copy.
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
        "\u2212": "-",
        "\u00a0": " ",
        "`": "",
        "*": "",
        "_": "",
    }
)

MIN_QUOTE_CHARS = 8
MIN_QUOTE_TOKENS = 2
MAX_SKIPPED = 3  # source tokens a quote may leave out (dropped words)
MAX_MISSING = 1  # quote tokens the source may lack (an inserted stop word)
MAX_GAP_TOKENS = 400  # how far apart the segments of an elided quote may lie

NEGATIONS = frozenset(
    "not no never nor none nothing neither nobody nowhere without cannot cant dont doesnt didnt isnt "
    "wasnt arent werent wont wouldnt shouldnt couldnt hasnt havent hadnt".split()
)
STOP_WORDS = frozenset(
    "a an the of in on at to for and or by with from as is was are were be been being it its this that "
    "these those his her their our which who also".split()
)

_TOKEN = re.compile(
    r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # 1,575 or 12,000.5: one number
    r"|\d+(?:\.\d+)?"  # 2010, 3.5
    r"|[^\W\d_]+?(?=n['\u2019]t\b)"  # "do" of don't
    r"|n['\u2019]t\b"  # n't, a negation of its own
    r"|[^\W\d_]+"
)
# wiki reference markers ("[ 13 ]", "[edit]", "[citation needed]") are not text: never tokens
_MARKER = re.compile(r"\[\s*(?:\d{1,3}|edit|citation needed|note \d+|[a-z])\s*\]", re.I)
_ELLIPSIS = re.compile(r"\s*(?:\[\s*(?:\.\s*){3}\]|\.{3,}|\u2026)\s*")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    how: str = "exact"


@dataclass(frozen=True)
class Token:
    text: str  # folded form
    start: int
    end: int

    @property
    def protected(self) -> bool:
        """Numbers and negations are never skipped."""
        return any(ch.isdigit() for ch in self.text) or self.text in NEGATIONS


def _folded_with_map(text: str) -> tuple[str, list[int]]:
    """``text`` with NFKC, diacritics removed and case folded, and each folded character's offset in it."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch.isascii():
            out.append(ch.lower())
            where.append(i)
            continue
        for c in unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", ch)):
            if unicodedata.combining(c):
                continue
            for f in c.casefold().replace("\u2019", "'"):
                out.append(f)
                where.append(i)
    return "".join(out), where


def tokenize(text: str) -> list[Token]:
    """Tokens of ``text`` with their offsets in it (reference markers such as ``[ 13 ]`` left out).

    Tokens are found in the folded text (NFKC, no diacritics, case folded), so a letter whose accent or
    vowel sign a copy dropped still belongs to the same token.
    """
    folded, where = _folded_with_map(text)
    markers = [(m.start(), m.end()) for m in _MARKER.finditer(folded)] if "[" in folded else []
    tokens = []
    k = 0
    for m in _TOKEN.finditer(folded):
        while k < len(markers) and markers[k][1] <= m.start():
            k += 1
        if k < len(markers) and markers[k][0] <= m.start() < markers[k][1]:
            continue
        raw = m.group(0)
        t = "not" if raw in ("n't",) else raw.replace(",", "") if raw[:1].isdigit() else raw
        tokens.append(Token(t, where[m.start()], where[m.end() - 1] + 1))
    return tokens


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


def _align(
    q: list[str], s: list[Token], start: int, *, max_skipped: int = MAX_SKIPPED, max_missing: int = MAX_MISSING
) -> tuple[int, int, int] | None:
    """Match all of ``q`` from source token ``start`` (which must match ``q``'s first matched token).

    Returns (index of the first matched source token, index after the last, edits) or None. A quote
    token is matched or (a stop word, at most ``max_missing`` times) missing; a source token inside the
    span is matched or skipped (not a number or a negation, at most ``max_skipped`` times).
    """
    memo: dict[tuple[int, int, int, int, int], tuple[int, int] | None] = {}
    last = len(q) - 1

    def go(i: int, j: int, skipped: int, missing: int, first: int, prev: int) -> tuple[int, int] | None:
        # first: index of the first matched source token (-1 before any match); prev: 0 matched, 1 skipped a
        # source token, 2 left out a quote token. A skip next to a left-out token would be a substitution.
        key = (i, j, skipped, missing, prev)
        if key in memo and first >= 0:
            return memo[key]
        if i == len(q):
            return (first, j) if first >= 0 and prev == 0 else None
        result = None
        if j < len(s) and s[j].text == q[i]:
            result = go(i + 1, j + 1, skipped, missing, j if first < 0 else first, 0)
        if (result is None and missing < max_missing and 0 < i < last and prev != 1 and first >= 0
                and q[i] in STOP_WORDS):
            result = go(i + 1, j, skipped, missing + 1, first, 2)
        if (result is None and first >= 0 and prev != 2 and j < len(s) and skipped < max_skipped
                and not s[j].protected):
            result = go(i, j + 1, skipped + 1, missing, first, 1)
        if first >= 0:
            memo[key] = result
        return result

    if not q or start >= len(s) or s[start].text != q[0]:
        return None
    found = go(0, start, 0, 0, -1, 0)
    return None if found is None else (found[0], found[1], 0)


def _find_run(q: list[str], s: list[Token], lo: int = 0, hi: int | None = None) -> tuple[int, int] | None:
    """The first contiguous run of ``s[lo:hi]`` equal to ``q``."""
    hi = len(s) if hi is None else min(hi, len(s))
    n = len(q)
    for j in range(lo, max(lo, hi - n + 1)):
        if s[j].text == q[0] and all(s[j + k].text == q[k] for k in range(1, n)):
            return j, j + n
    return None


def _find_fuzzy(q: list[str], s: list[Token], lo: int = 0, hi: int | None = None) -> tuple[int, int] | None:
    hi = len(s) if hi is None else min(hi, len(s))
    for j in range(lo, hi):
        if s[j].text == q[0]:
            found = _align(q, s, j)
            if found is not None:
                return found[0], found[1]
    return None


class SourceText:
    """A source's text prepared once for many quote look-ups."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._norm, self._map = _normalise_with_map(text)
        self._tokens: list[Token] | None = None

    @property
    def tokens(self) -> list[Token]:
        if self._tokens is None:
            self._tokens = tokenize(self.text)
        return self._tokens

    def find_exact(self, quote: str) -> Span | None:
        """Step 1 alone: the quote's folded characters, contiguous (the check before tolerant matching)."""
        q = normalise(quote).strip(" \"'.,;:")
        if len(q) < MIN_QUOTE_CHARS:
            return None
        pos = self._norm.find(q)
        if pos < 0:
            return None
        return Span(self._map[pos], self._map[pos + len(q) - 1] + 1, "exact")

    def find(self, quote: str) -> Span | None:
        """The span of the source ``quote`` stands for (see the module docstring), or None."""
        exact = self.find_exact(quote)
        if exact is not None:
            return exact
        segments = [[t.text for t in tokenize(part)] for part in _ELLIPSIS.split(quote)]
        segments = [seg for seg in segments if seg]
        total = sum(len(seg) for seg in segments)
        if total < MIN_QUOTE_TOKENS or len(normalise(quote)) < MIN_QUOTE_CHARS:
            return None
        s = self.tokens
        if len(segments) == 1:
            q = segments[0]
            run = _find_run(q, s)
            if run is not None:
                return self._span(run, "tokens")
            fuzzy = _find_fuzzy(q, s)
            return self._span(fuzzy, "fuzzy") if fuzzy is not None else None
        return self._elided(segments)

    def _elided(self, segments: list[list[str]]) -> Span | None:
        s = self.tokens
        first = segments[0]
        for j in range(len(s)):
            if s[j].text != first[0]:
                continue
            head = _find_run(first, s, j, j + len(first)) or (
                _find_fuzzy(first, s, j, j + 1) if len(first) > 1 else None
            )
            if head is None:
                continue
            end = head[1]
            ok = True
            for seg in segments[1:]:
                hi = min(len(s), end + MAX_GAP_TOKENS + len(seg))
                nxt = _find_run(seg, s, end, hi) or (_find_fuzzy(seg, s, end, hi) if len(seg) > 1 else None)
                if nxt is None:
                    ok = False
                    break
                end = nxt[1]
            if ok:
                return self._span((head[0], end), "elided")
        return None

    def _span(self, run: tuple[int, int], how: str) -> Span:
        s = self.tokens
        return Span(s[run[0]].start, s[run[1] - 1].end, how)

    def contains_name(self, name: str) -> bool:
        """Whether an entity name occurs in the source as a whole word (case-insensitive)."""
        n = normalise(name)
        if len(n) < 2:
            return False
        if re.search(r"(?<!\w)" + re.escape(n) + r"(?!\w)", self._norm) is not None:
            return True
        q = [t.text for t in tokenize(name)]
        return bool(q) and _find_run(q, self.tokens) is not None


def locate(text: str, quote: str) -> tuple[int, int] | None:
    """The span ``(start, end)`` of ``text`` that ``quote`` stands for, or None (module docstring)."""
    span = SourceText(text).find(quote)
    return None if span is None else (span.start, span.end)


def value_in(text: str, value: str) -> bool:
    """Whether ``value`` (a claim's value as the source words it) occurs in ``text`` (its quote's span).

    Token-wise, so spacing, punctuation, case and accents do not matter; a value may be a single token
    (a year). A few tokens of the span may lie between the value's (``March 2023`` in ``March of 2023``).
    """
    q = [t.text for t in tokenize(value)]
    if not q:
        return False
    s = tokenize(text)
    if _find_run(q, s) is not None:
        return True
    return len(q) > 1 and _find_fuzzy(q, s) is not None


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
