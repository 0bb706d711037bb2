"""Slugs: stable, ASCII, lower-case names that are safe as file names on every operating system.

``slugify`` is deterministic and idempotent (``slugify(slugify(x)) == slugify(x)``). It keeps digits and the
dots between digits, so names that differ in a version stay distinct ("Kubernetes 1.24" ->
``kubernetes-1.24``, "Kubernetes 1.25" -> ``kubernetes-1.25``). Letters that have no ASCII form are not
silently dropped: when any are lost, a short hash of the whole name is appended, so "Tokyo 東京" and
"Tokyo 大阪" get different slugs; a name with no ASCII left at all becomes its hash.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["MIN_LEN", "short_hash", "slugify", "unique_slug"]

MIN_LEN = 16
HASH_LEN = 8

# Letters NFKD does not decompose into ASCII.
_TRANSLIT = {
    "ß": "ss",
    "æ": "ae",
    "Æ": "AE",
    "ø": "o",
    "Ø": "O",
    "œ": "oe",
    "Œ": "OE",
    "đ": "d",
    "Đ": "D",
    "ł": "l",
    "Ł": "L",
    "þ": "th",
    "Þ": "TH",
    "ð": "d",
    "Ð": "D",
    "ı": "i",
    "ħ": "h",
    "Ħ": "H",
}
# Symbols that carry meaning in names: "C++" is not "C", "C#" is not "C".
_SYMBOLS = {"+": " plus ", "#": " sharp ", "&": " and ", "@": " at "}
# Windows device names, reserved whatever the extension ("con.md" is reserved too).
_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}

_NOT_SLUG = re.compile(r"[^a-z0-9.]")
_LONE_DOT = re.compile(r"(?<![0-9])\.|\.(?![0-9])")  # a dot survives only inside a version number


def short_hash(text: str, length: int = HASH_LEN) -> str:
    """Return the first ``length`` hex digits of the SHA-256 of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def _ascii_fold(name: str) -> tuple[str, bool]:
    """Fold ``name`` to ASCII; the flag says whether a letter or digit had to be dropped."""
    out: list[str] = []
    lost = False
    for ch in name:
        if ch.isascii():
            out.append(_SYMBOLS.get(ch, ch))
            continue
        ch = _TRANSLIT.get(ch, ch)
        folded = unicodedata.normalize("NFKD", ch)
        kept = "".join(c for c in folded if c.isascii())
        if not kept.strip() and any(c.isalnum() for c in folded):
            lost = True
        out.append(kept if kept else " ")
    return "".join(out), lost


def _core(name: str) -> tuple[str, bool]:
    folded, lost = _ascii_fold(name)
    text = _NOT_SLUG.sub("-", folded.lower())
    text = re.sub(r"-+", "-", _LONE_DOT.sub("-", text))
    return text.strip("-."), lost


def _trim(text: str, limit: int) -> str:
    return text[:limit].rstrip("-.")


def slugify(name: str, max_len: int = 80) -> str:
    """Turn a name into a file-name-safe slug.

    Args:
        name: any text (an entity name, a document title).
        max_len: the longest slug returned; at least ``MIN_LEN``.

    Returns:
        A non-empty string of ``[a-z0-9.-]`` that does not start or end with a dot or hyphen and is no
        Windows device name (those get a leading ``_``: ``con`` -> ``_con``). Too-long slugs are cut and
        end in a hash of the full name, so long names that share a prefix stay distinct.

    Raises:
        ValueError: when ``max_len`` is below ``MIN_LEN``.
    """
    if max_len < MIN_LEN:
        raise ValueError(f"max_len must be at least {MIN_LEN}")
    core, lost = _core(name)
    if not core:
        return short_hash(name)
    if lost or len(core) > max_len:
        core = f"{_trim(core, max_len - HASH_LEN - 1)}-{short_hash(name)}"
    if core.partition(".")[0] in _RESERVED:
        core = "_" + _trim(core, max_len - 1)  # "_" never occurs otherwise, so this cannot collide
    return core


def unique_slug(base: str, taken: set[str], max_len: int = 80) -> str:
    """Return ``base``, or ``base-2``, ``base-3`` ... : the first one not in ``taken``.

    Args:
        base: a slug (normally from ``slugify``).
        taken: slugs already in use (compared exactly; slugs are lower-case).
        max_len: the result never exceeds it; ``base`` is shortened to make room for the suffix.

    Returns:
        A slug not in ``taken``. Deterministic for the same arguments.
    """
    if base not in taken and len(base) <= max_len:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = _trim(base, max_len - len(suffix)) + suffix
        if candidate not in taken:
            return candidate
        n += 1
