"""Fact slots: normal forms of a claim's attribute, value and date (DESIGN section 1, "Claims are fact slots").

Pure code, no model: two claims about one entity are compared by ``attr_key`` (what they answer) and
``value_norm`` (the answer), so duplicates, dated changes and dispute candidates are found without a
model call.

- :func:`attribute_key`: case, punctuation, stop words and plurals folded, then a synonym table maps the
  ways sources name one attribute onto one key (born, date of birth, birth year -> ``birth date``;
  founded, established -> ``founding date``; caused by, cause -> ``root cause``). Similar keys within an
  entity are merged by embedding similarity in the extract flow, not here.
- :func:`normalize_value`: dates to partial ISO (``1983``, ``1983-08``, ``1983-08-01``), numbers to plain
  digits with their unit (``3,559 people`` -> ``3559 people``, ``1.2 million`` -> ``1200000``), names and
  text folded (case, accents, punctuation, parentheticals, a leading article).
- :func:`same_value`: equality of normal forms, where a date also equals a more precise date it
  contains and a number with a unit equals the bare number.
- :func:`can_change`: whether an attribute's value may change over time (a status, an owner, a
  population) or is fixed once (born, died, founded, built, released, caused by).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_MONTHS = {
    m: i
    for i, names in enumerate(
        (
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
            ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
            ("october", "oct"), ("november", "nov"), ("december", "dec"),
        ),
        start=1,
    )
    for m in names
}
_MONTH = r"(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<year>1\d{3}|20\d{2})"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_DATE_PATTERNS = [
    re.compile(r"\b(?P<year>1\d{3}|20\d{2})-(?P<m>[01]?\d)(?:-(?P<day>[0-3]?\d))?\b"),
    re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.I),
    re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.I),
    re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?{_YEAR}\b", re.I),
    re.compile(rf"(?<![\d,.])\b{_YEAR}\b(?![,.]?\d)"),
]
_NUMBER = re.compile(
    r"(?P<sign>[-\u2212])?(?P<num>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<dec>\d+))?"
    r"\s*(?P<scale>million|billion|thousand|bn|m|k)?\b\s*(?P<unit>%|[^\W\d_]+)?",
    re.I,
)
_SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9}
_LEADING_NUMBER = re.compile(
    r"\s*(?:about|around|approximately|over|some|nearly|almost|circa|c\.)?\s*[-\u2212]?\d", re.I
)
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_NON_WORD = re.compile(r"[^\w%]+")
_ARTICLES = ("the ", "a ", "an ")

STOP = frozenset(
    "a an the of its his her their this that is was are were be been has have had in on at to for by "
    "what which who whom whose when where current currently".split()
)

# phrase (after folding) -> key. Checked whole, then by the cue words below.
SYNONYMS: dict[str, str] = {
    "born": "birth date", "birth": "birth date", "birthday": "birth date", "birthdate": "birth date",
    "date birth": "birth date", "birth year": "birth date", "year birth": "birth date", "dob": "birth date",
    "birth date": "birth date",
    "birthplace": "birth place", "place birth": "birth place", "born in": "birth place", "birth place": "birth place",
    "died": "death date", "death": "death date", "date death": "death date", "death year": "death date",
    "year death": "death date", "death date": "death date",
    "place death": "death place", "death place": "death place",
    "founded": "founding date", "founding": "founding date", "established": "founding date",
    "establishment": "founding date", "founding date": "founding date", "founding year": "founding date",
    "year founded": "founding date", "date founded": "founding date", "inception": "founding date",
    "formed": "founding date", "formation": "founding date", "incorporated": "founding date",
    "founder": "founder", "founded by": "founder", "founders": "founder",
    "built": "construction date", "construction": "construction date", "constructed": "construction date",
    "construction date": "construction date", "year built": "construction date", "completed": "construction date",
    "completion": "construction date",
    "released": "release date", "release": "release date", "release date": "release date",
    "release year": "release date", "premiere": "release date", "premiered": "release date",
    "first aired": "release date",
    "caused by": "root cause", "cause": "root cause", "root cause": "root cause", "reason": "root cause",
    "trigger": "root cause", "triggered by": "root cause",
    "population": "population", "inhabitants": "population", "residents": "population",
    "located": "location", "location": "location", "situated": "location", "located in": "location",
    "status": "status", "state": "status", "decision status": "status",
    "owner": "owner", "owned by": "owner", "ownership": "owner",
    "author": "author", "written by": "author", "writer": "author",
    "director": "director", "directed by": "director",
    "sport": "sport", "plays": "sport",
    "occupation": "occupation", "profession": "occupation", "job": "occupation",
    "nationality": "nationality", "citizenship": "nationality",
    "capital": "capital", "capital city": "capital",
}
# cue words that decide a key when the whole phrase is not in the table (first match wins)
_CUES: tuple[tuple[frozenset[str], frozenset[str], str], ...] = (
    (frozenset({"born", "birth"}), frozenset({"place", "city", "town", "where", "country"}), "birth place"),
    (frozenset({"born", "birth", "birthday", "birthdate"}), frozenset(), "birth date"),
    (frozenset({"died", "death"}), frozenset({"place", "city", "where"}), "death place"),
    (frozenset({"died", "death"}), frozenset(), "death date"),
    (frozenset({"founder", "founders"}), frozenset(), "founder"),
    (frozenset({"founded", "founding", "established", "establishment", "inception"}), frozenset(), "founding date"),
    (frozenset({"built", "construction", "constructed"}), frozenset(), "construction date"),
    (frozenset({"released", "release", "premiere", "premiered"}), frozenset(), "release date"),
    (frozenset({"cause", "caused"}), frozenset(), "root cause"),
    (frozenset({"population", "inhabitants"}), frozenset(), "population"),
)
# attributes whose value is fixed once it happened: two values are a dispute whatever their dates
FIXED = frozenset(
    {"birth date", "birth place", "death date", "death place", "founding date", "founder", "construction date",
     "release date", "root cause"}
)
DATE_KEYS = frozenset({"birth date", "death date", "founding date", "construction date", "release date"})


def fold(text: str) -> str:
    """Case, accents, punctuation and spacing folded; parentheticals kept."""
    t = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    t = "".join(ch for ch in t if not unicodedata.combining(ch)).casefold().replace("\u2019", "'")
    return " ".join(_NON_WORD.sub(" ", t.replace("'s ", " ")).split())


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def attribute_key(attribute: str | None) -> str | None:
    """The normal form of an attribute phrase, or None when there is nothing left of it.

    >>> attribute_key("Date of Birth"), attribute_key("was founded"), attribute_key("Root causes")
    ('birth date', 'founding date', 'root cause')
    """
    if not attribute:
        return None
    folded = fold(_PAREN.sub(" ", attribute))
    if folded in SYNONYMS:
        return SYNONYMS[folded]
    words = [w for w in folded.split() if w not in STOP]
    if not words:
        return None
    phrase = " ".join(words)
    if phrase in SYNONYMS:
        return SYNONYMS[phrase]
    singular = " ".join(_singular(w) for w in words)
    if singular in SYNONYMS:
        return SYNONYMS[singular]
    bag = set(words) | {_singular(w) for w in words}
    for cues, also, key in _CUES:
        if bag & cues and (not also or bag & also):
            return key
    return singular[:200]


def can_change(attr_key: str | None) -> bool:
    """Whether the attribute's value may change over time (see ``FIXED``)."""
    return attr_key is not None and attr_key not in FIXED


def normalize_date(text: str | None) -> str | None:
    """The first date in ``text`` as partial ISO (``1983``, ``1983-08``, ``1983-08-01``), or None."""
    if not text:
        return None
    for pattern in _DATE_PATTERNS:
        m = pattern.search(text)
        if m is None:
            continue
        groups = m.groupdict()
        year = groups["year"]
        month = int(groups["m"]) if groups.get("m") else _MONTHS.get((groups.get("mon") or "").lower().rstrip("."))
        day = int(groups["day"]) if groups.get("day") else None
        if month is None or not 1 <= month <= 12:
            return year
        if day is None or not 1 <= day <= 31:
            return f"{year}-{month:02d}"
        return f"{year}-{month:02d}-{day:02d}"
    return None


def _number(text: str) -> tuple[str, str] | None:
    """``(digits, unit)`` of the first number in ``text``, or None."""
    m = _NUMBER.search(text)
    if m is None:
        return None
    value = float(m.group("num").replace(",", "") + ("." + m.group("dec") if m.group("dec") else ""))
    scale = (m.group("scale") or "").lower()
    unit = (m.group("unit") or "").lower()
    if scale in _SCALES and not (scale == "m" and unit):
        value *= _SCALES[scale]
    elif scale:
        unit = scale
    if m.group("sign"):
        value = -value
    digits = f"{value:.6f}".rstrip("0").rstrip(".")
    unit = _singular(fold(unit)) if unit and unit != "%" else unit
    return digits, unit


@dataclass(frozen=True)
class Value:
    """A normalized value: ``norm`` to compare, ``type`` one of date | number | name | text."""

    norm: str
    type: str


def normalize_value(value: str | None, attr_key: str | None = None) -> Value | None:
    """The normal form of a claim's value (module docstring), or None for an empty value."""
    if value is None or not value.strip():
        return None
    raw = " ".join(value.split())
    bare = _PAREN.sub(" ", raw).strip() or raw
    date = normalize_date(bare)
    date_like = date is not None and (attr_key in DATE_KEYS or len(fold(bare).split()) <= 4)
    if date is not None and date_like and not re.fullmatch(r"\s*\d{1,3}(?:,\d{3})+.*", bare):
        return Value(date, "date")
    num = _number(bare)
    if num is not None and _LEADING_NUMBER.match(bare):
        digits, unit = num
        return Value(f"{digits} {unit}".strip()[:500], "number")
    folded = fold(bare)
    for article in _ARTICLES:
        if folded.startswith(article):
            folded = folded[len(article):]
            break
    head = re.sub(r"^(?:the|a|an)\s+", "", bare, flags=re.I)
    kind = "name" if head[:1].isupper() and len(folded.split()) <= 6 else "text"
    return Value(folded[:500], kind)


def _number_parts(norm: str) -> tuple[float, str]:
    digits, _, unit = norm.partition(" ")
    return float(digits), unit


def same_value(a: Value | None, b: Value | None) -> bool:
    """Whether two normalized values give the same answer (module docstring)."""
    if a is None or b is None:
        return False
    if a.type == "date" and b.type == "date":
        short, long = sorted((a.norm, b.norm), key=len)
        return long == short or long.startswith(short + "-")
    if a.type == "number" and b.type == "number":
        (x, ux), (y, uy) = _number_parts(a.norm), _number_parts(b.norm)
        return x == y and (not ux or not uy or ux == uy)
    return a.norm == b.norm


def hard_differ(a: Value | None, b: Value | None) -> bool:
    """Whether two values are dates or numbers that differ: such values are never a duplicate."""
    if a is None or b is None or a.type != b.type or a.type not in ("date", "number"):
        return False
    return not same_value(a, b)


def mentions(text: str) -> set[str]:
    """Normal forms of every date and number in ``text`` (to check a value against its quote's span)."""
    out: set[str] = set()
    for pattern in _DATE_PATTERNS[:4]:
        for m in pattern.finditer(text):
            d = normalize_date(m.group(0))
            if d:
                out.add(d)
    for m in _NUMBER.finditer(text):
        n = _number(m.group(0))
        if n:
            out.add(n[0])
    return out


def value_matches_span(span_text: str, value: Value | None) -> bool:
    """Whether a date or number value appears in ``span_text`` in another format."""
    if value is None or value.type not in ("date", "number"):
        return False
    found = mentions(span_text)
    if value.type == "date":
        return any(f == value.norm or f.startswith(value.norm + "-") or value.norm.startswith(f + "-")
                   for f in found)
    return value.norm.partition(" ")[0] in found
