"""`lore eval grounding`: how the grounding check treats copies of real spans (no model).

Spans are sentences drawn from real documents (the RAMDocs passages, whose text keeps a tokenizer's
spacing, and the ops documents). Each span is copied the ways a model copies text, and altered the ways
that change what it says; every copy is looked up in its own document with ``SourceText.find``:

- near-verbatim (should be found): ``detokenized`` (``people , 1,575`` -> ``people, 1,575``, PTB quotes),
  ``lowercase``, ``typographic`` (curly quotes, en dashes), ``accents`` stripped, ``spacing`` folded,
  ``dropped_word`` (one word that is not a number or a negation), ``elided`` (a few middle words ->
  ``...``);
- altered (must not be found): ``changed_number`` (a digit changed, the new number absent from the
  document), ``changed_name`` (a capitalized word replaced by a name the document never uses),
  ``negation`` (a ``not`` inserted after an auxiliary, or an existing negation dropped).

Reported: acceptance per kind, ``near_verbatim_acceptance`` and ``altered_acceptance`` overall, the same
for the baseline (the exact check on folded characters that grounding used before), and a few examples
of each failure.
"""

from __future__ import annotations

import json
import random
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from synth.grounding import NEGATIONS, STOP_WORDS, SourceText

NEAR = ("detokenized", "lowercase", "typographic", "accents", "spacing", "dropped_word", "elided")
ALTERED = ("changed_number", "changed_name", "negation")
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?](?=[^\s]))+[.!?]?")  # a decimal point does not end a sentence
_WORD = re.compile(r"\S+")
_AUX = re.compile(r"\b(is|was|are|were|has|had|have|can|will|would|did|does|do|could|should)\b")
_NEG_WORD = re.compile(r"\b(not|never|no)\b\s*")


def documents(data_dir: Path) -> Iterator[tuple[str, str]]:
    """(name, text) of the documents spans are drawn from."""
    conflicts = data_dir / "conflicts" / "ramdocs-dev.jsonl"
    if conflicts.is_file():
        for i, line in enumerate(conflicts.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                for j, doc in enumerate(json.loads(line)["documents"]):
                    yield f"ramdocs-{i}-{j}", doc["text"]
    for folder in ("ops/dfds-postmortems/docs", "ops/moj-adrs", "ops/prometheus-runbooks/runbooks"):
        base = data_dir / folder
        if base.is_dir():
            for path in sorted(base.rglob("*.md")):
                yield str(path.relative_to(data_dir)), path.read_text(encoding="utf-8", errors="replace")


def spans(text: str) -> list[str]:
    """Sentences of 6 to 40 words, markup lines left out."""
    out = []
    for m in _SENTENCE.finditer(text):
        s = m.group(0).strip()
        words = s.split()
        if 6 <= len(words) <= 40 and not s.startswith(("|", "#", "```", "<", "-", "*", ">")):
            out.append(s)
    return out


def _detokenize(s: str) -> str:
    s = s.replace("``", '"').replace("''", '"').replace(" n't", "n't")
    s = re.sub(r"\s+([,.;:!?%)\]])", r"\1", s)
    return re.sub(r"([(\[])\s+", r"\1", s)


def _strip_accents(s: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))


def near_copy(kind: str, span: str, rng: random.Random) -> str | None:
    """A copy of ``span`` with one near-verbatim change, or None when the change does not apply."""
    words = span.split()
    if kind == "detokenized":
        out = _detokenize(span)
    elif kind == "lowercase":
        out = span.lower()
    elif kind == "typographic":
        out = re.sub(r'"([^"]*)"', "\u201c\\1\u201d", span).replace("'", "\u2019").replace(" - ", " \u2013 ")
    elif kind == "accents":
        out = _strip_accents(span)
    elif kind == "spacing":
        out = "  ".join(words[: len(words) // 2]) + "\n" + " ".join(words[len(words) // 2 :])
    elif kind == "dropped_word":
        ok = [i for i in range(1, len(words) - 1) if re.fullmatch(r"[^\W\d_]{2,}", words[i])
              and words[i].lower() not in NEGATIONS]
        if not ok:
            return None
        i = rng.choice(ok)
        out = " ".join(words[:i] + words[i + 1 :])
    else:  # elided
        if len(words) < 8:
            return None
        start = rng.randrange(2, len(words) - 4)
        out = " ".join(words[:start]) + " ... " + " ".join(words[start + rng.randint(1, 3) :])
    return None if out == span and kind not in ("detokenized",) else out


def altered_copy(kind: str, span: str, text: str, names: list[str], rng: random.Random) -> str | None:
    """A copy of ``span`` that says something else, or None when the change does not apply."""
    if kind == "changed_number":  # reference markers ([13], [ 2 ]) are not text: their numbers are left alone
        markers = [(m.start(), m.end()) for m in re.finditer(r"\[\s*\d{1,3}\s*\]", span)]
        nums = [m for m in re.finditer(r"\d+", span) if not any(a <= m.start() < b for a, b in markers)]
        rng.shuffle(nums)
        for m in nums:
            digits = m.group(0)
            new = digits[:-1] + str((int(digits[-1]) + rng.randint(1, 8)) % 10)
            candidate = span[: m.start()] + new + span[m.end() :]
            if not re.search(r"(?<!\d)" + re.escape(new) + r"(?!\d)", text.replace(",", "")):
                return candidate
        return None
    if kind == "changed_name":
        caps = [m for m in _WORD.finditer(span) if m.start() > 0 and re.fullmatch(r"[A-Z][a-z]{2,}", m.group(0))]
        if not caps:
            return None
        m = rng.choice(caps)
        pool = [n for n in names if n.lower() not in text.lower() and n.lower() not in STOP_WORDS]
        if not pool:
            return None
        return span[: m.start()] + rng.choice(pool) + span[m.end() :]
    neg = _NEG_WORD.search(span)
    if neg is not None and re.search(r"[^\W_]", span[neg.end() :]):  # dropped inside the span, not at its end
        return span[: neg.start()] + span[neg.end() :]
    aux = _AUX.search(span)
    if aux is None:
        return None
    return span[: aux.end()] + " not" + span[aux.end() :]


def run(data_dir: Path, *, n: int = 1500, seed: int = 1,
        progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Draw ``n`` spans, copy and alter each, and report acceptance (module docstring)."""
    rng = random.Random(seed)
    docs = list(documents(data_dir))
    if not docs:
        raise FileNotFoundError(f"no documents under {data_dir} (expected conflicts/ and ops/ as in shared/data)")
    pool = [(name, text, s) for name, text in docs for s in spans(text)]
    rng.shuffle(pool)
    chosen = pool[:n]
    names = sorted({w for _, _, s in chosen for w in re.findall(r"\b[A-Z][a-z]{3,}\b", s)})
    counts = {k: [0, 0, 0] for k in (*NEAR, *ALTERED)}  # kind -> [tried, accepted, accepted by the baseline]
    failures: dict[str, list[dict[str, str]]] = {k: [] for k in counts}
    cache: dict[str, SourceText] = {}
    start = time.perf_counter()
    for i, (name, text, span) in enumerate(chosen, start=1):
        src = cache.get(name)
        if src is None:
            src = cache[name] = SourceText(text)
        copies = [(kind, near_copy(kind, span, rng), True) for kind in NEAR]
        copies += [(kind, altered_copy(kind, span, text, names, rng), False) for kind in ALTERED]
        for kind, copy, should_find in copies:
            if copy is None:
                continue
            found = src.find(copy) is not None
            counts[kind][0] += 1
            counts[kind][1] += found
            counts[kind][2] += src.find_exact(copy) is not None
            if found != should_find and len(failures[kind]) < 5:
                failures[kind].append({"doc": name, "span": span, "copy": copy})
        if progress is not None and i % 100 == 0:
            progress(i, len(chosen))

    def rate(kinds: tuple[str, ...], col: int = 1) -> float:
        tried = sum(counts[k][0] for k in kinds)
        return round(sum(counts[k][col] for k in kinds) / tried, 4) if tried else 0.0

    return {
        "spans": len(chosen),
        "documents": len({name for name, _, _ in chosen}),
        "near_verbatim_acceptance": rate(NEAR),
        "altered_acceptance": rate(ALTERED),
        # the check before tolerant matching: folded characters, contiguous (``SourceText.find_exact``)
        "baseline": {"near_verbatim_acceptance": rate(NEAR, 2), "altered_acceptance": rate(ALTERED, 2)},
        "by_kind": {k: {"copies": t, "accepted": a, "acceptance": round(a / t, 4) if t else None,
                        "baseline_acceptance": round(b / t, 4) if t else None}
                    for k, (t, a, b) in counts.items()},
        "examples": {k: v for k, v in failures.items() if v},
        "wall_s": round(time.perf_counter() - start, 1),
        "seed": seed,
    }
