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
