"""Splitting long source text into chunks the model can read in one call."""

from __future__ import annotations

import re

CHARS_PER_TOKEN = 4


def split_chunks(text: str, target_tokens: int) -> list[str]:
    """Split at paragraph boundaries (then lines, then hard cuts) into chunks of about ``target_tokens``.

    Every character of ``text`` lands in exactly one chunk, so quotes stay findable in the whole text.
    """
    limit = max(200, target_tokens * CHARS_PER_TOKEN)
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    for para in re.split(r"(\n\s*\n)", text):
        while len(para) > limit:
            cut = para.rfind("\n", 0, limit)
            if cut <= limit // 2:
                cut = para.rfind(" ", 0, limit)
            if cut <= limit // 2:
                cut = limit
            pieces.append(para[:cut])
            para = para[cut:]
        pieces.append(para)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(piece) > limit:
            chunks.append(current)
            current = ""
        current += piece
    if current.strip():
        chunks.append(current)
    return chunks


def halve(text: str) -> list[str]:
    """Cut ``text`` in two near its middle: at a paragraph break, else a line break, else a space.

    The two halves concatenate to ``text`` (quotes stay findable in the whole). Text with no break in
    its middle half comes back whole, as a one-item list.
    """
    mid = len(text) // 2
    lo, hi = max(1, len(text) // 4), min(len(text) - 1, len(text) - len(text) // 4)  # neither half empty
    for sep in ("\n\n", "\n", " "):
        cuts = [m.end() for m in re.finditer(re.escape(sep), text) if lo <= m.end() <= hi]
        if cuts:
            cut = min(cuts, key=lambda c: abs(c - mid))
            return [text[:cut], text[cut:]]
    return [text]
