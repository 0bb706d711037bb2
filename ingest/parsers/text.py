"""Plain text: decoded, line ends normalised, control characters removed; the first line is the title."""

from __future__ import annotations

from ingest.document import ParsedDocument, clean_text, title_from_text
from ingest.errors import ParseFailed
from ingest.sniff import decode_text


def parse(data: bytes) -> ParsedDocument:
    """Parse plain text.

    Raises:
        ParseFailed: the text is not decodable or holds nothing but whitespace.
    """
    text, encoding = decode_text(data)
    body = clean_text(text)
    if not body.strip():
        raise ParseFailed("text holds only whitespace")
    return ParsedDocument(text=body, title=title_from_text(body), metadata={"encoding": encoding})
