"""Text handling for the search index: the analyzer behind BM25 and the chunker.

The analyzer is the single definition of a "term": lowercase, accents folded, split on anything that is
not a letter or digit, English stopwords dropped, Snowball English stemming (PyStemmer). The SQLite full
text table stores analyzed terms (so documents and queries always agree) and query expansion counts
terms with the same function. PostgreSQL analyzes with its own ``english`` configuration (also Snowball
English with a stopword list), so for it we pass the surface words and let the server stem them.

``chunk_text`` splits long text into pieces of about ``target_tokens`` at paragraph, then sentence,
then word boundaries.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import Stemmer

#: Bump when the analyzer changes: indexed terms must be rebuilt (see ``SearchIndex.ensure_index``).
ANALYZER_VERSION = "snowball-en-1"

# English function words; kept short so that names made of common words still match.
STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not now of off on once only or other our ours ourselves out over own same she should
    so some such than that the their theirs them themselves then there these they this those through to
    too under until up very was we were what when where which while who whom why will with would you
    your yours yourself yourselves s t
    """.split()
)

_WORD = re.compile(r"[^\W_]+")
_PARA = re.compile(r"\n\s*\n")
# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) and whitespace.
_SENT_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")
_TOKEN_ESTIMATE = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True, slots=True)
class Term:
    """One analyzed word: its stem (the index term) and the word as written (lowercased)."""

    stem: str
    surface: str


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def fold(text: str) -> str:
    """Lowercase and strip accents (``Café`` -> ``cafe``)."""
    if text.isascii():  # nothing to decompose: the common case, and far cheaper
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """The folded words of ``text``, stopwords included, in order."""
    return _WORD.findall(fold(text))


def analyze(text: str) -> list[Term]:
    """The index terms of ``text`` in order: folded, stopwords removed, stemmed."""
    kept = [w for w in words(text) if w not in STOPWORDS]
    stems = _stemmer().stemWords(kept)
    return [Term(s, w) for s, w in zip(stems, kept, strict=True)]


def stems(text: str) -> list[str]:
    """The stems of :func:`analyze`, in order, without building ``Term`` objects (for bulk indexing)."""
    return _stemmer().stemWords([w for w in words(text) if w not in STOPWORDS])


def index_text(text: str) -> str:
    """``text`` as the space-separated stems stored in the SQLite full-text table."""
    return " ".join(stems(text))


@dataclass(frozen=True, slots=True)
class QueryTerms:
    """A query reduced to distinct terms and to adjacent word pairs (phrases)."""

    terms: tuple[Term, ...]
    phrases: tuple[tuple[Term, Term], ...]

    @property
    def stems(self) -> set[str]:
        return {t.stem for t in self.terms}


def query_terms(text: str) -> QueryTerms:
    """Distinct terms of a query, plus each pair of words that stand next to each other in it.

    Pairs are taken only where neither word is a stopword, so ``"Bank of America"`` gives the terms
    ``bank`` and ``america`` and no pair, while ``"Bobby Carpenter"`` also gives the phrase
    ``bobby carpenter``: documents with the exact name rank above those with the two words apart.
    """
    raw = words(text)
    stems = _stemmer().stemWords(raw)
    seen: dict[str, Term] = {}
    pairs: dict[tuple[str, str], tuple[Term, Term]] = {}
    for i, (w, s) in enumerate(zip(raw, stems, strict=True)):
        if w in STOPWORDS:
            continue
        seen.setdefault(s, Term(s, w))
        if i + 1 < len(raw) and raw[i + 1] not in STOPWORDS:
            a, b = Term(s, w), Term(stems[i + 1], raw[i + 1])
            pairs.setdefault((a.stem, b.stem), (a, b))
    return QueryTerms(tuple(seen.values()), tuple(pairs.values()))


def estimate_tokens(text: str) -> int:
    """A cheap token count: words and punctuation marks (close to a subword tokenizer on English)."""
    return len(_TOKEN_ESTIMATE.findall(text))


def _sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in _SENT_END.split(paragraph) if s.strip()]


def _split_long(sentence: str, target: int) -> list[str]:
    parts = sentence.split()
    out: list[str] = []
    cur: list[str] = []
    size = 0
    for word in parts:
        n = estimate_tokens(word)
        if cur and size + n > target:
            out.append(" ".join(cur))
            cur, size = [], 0
        cur.append(word)
        size += n
    if cur:
        out.append(" ".join(cur))
    return out


def _units(text: str, target: int) -> Iterable[tuple[str, int, bool]]:
    """Yield (piece, tokens, starts_paragraph) with every piece at most ``target`` tokens."""
    for para in _PARA.split(text):
        first = True
        for sent in _sentences(para):
            n = estimate_tokens(sent)
            pieces = [sent] if n <= target else _split_long(sent, target)
            for piece in pieces:
                yield piece, estimate_tokens(piece), first
                first = False


def chunk_text(text: str, target_tokens: int = 200, overlap: int = 0) -> list[str]:
    """Split ``text`` into chunks of about ``target_tokens``, cutting at paragraph or sentence ends.

    Sentences are packed greedily; a sentence longer than the target is cut between words. Each chunk
    after the first starts with whole sentences from the end of the previous one, up to ``overlap``
    tokens, so a fact that straddles a cut is whole in at least one chunk. Paragraph breaks inside a
    chunk are kept as blank lines.

    Args:
        text: the text to split.
        target_tokens: the size to aim for (estimated tokens, see ``estimate_tokens``).
        overlap: tokens of context repeated from the previous chunk; must be below ``target_tokens``.

    Returns:
        The chunks in order; ``[]`` for blank text; a text shorter than the target is one chunk.

    Raises:
        ValueError: ``target_tokens`` < 1 or ``overlap`` not in ``[0, target_tokens)``.
    """
    if target_tokens < 1:
        raise ValueError("target_tokens must be at least 1")
    if not 0 <= overlap < target_tokens:
        raise ValueError("overlap must be at least 0 and below target_tokens")
    if not text.strip():
        return []
    if estimate_tokens(text) <= target_tokens:
        return [text.strip()]
    chunks: list[str] = []
    cur: list[tuple[str, int, bool]] = []
    size = 0
    fresh = 0  # pieces in ``cur`` not carried over from the previous chunk

    def flush() -> None:
        body = ""
        for i, (piece, _n, para) in enumerate(cur):
            body += piece if i == 0 else ("\n\n" if para else " ") + piece
        chunks.append(body)

    for unit in _units(text, target_tokens):
        if cur and size + unit[1] > target_tokens and fresh:
            flush()
            carry: list[tuple[str, int, bool]] = []
            kept = 0
            for prev in reversed(cur):
                if kept + prev[1] > overlap or kept + prev[1] + unit[1] > target_tokens:
                    break
                carry.insert(0, prev)
                kept += prev[1]
            cur, size, fresh = carry, kept, 0
        cur.append(unit)
        size += unit[1]
        fresh += 1
    if fresh:
        flush()
    return chunks
