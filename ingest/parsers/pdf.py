"""PDF: the text of every page, with pypdf.

Pages are separated by a blank line. A PDF with no extractable text (a scan) fails with that reason
rather than producing an empty source; an encrypted one is tried with the empty password, as readers
do. pypdf guards against reference loops itself; anything it still cannot survive is bounded by the
sandbox (time, memory) around this parser.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from ingest.document import ParsedDocument, clean_text, one_line, plain_metadata, title_from_text
from ingest.errors import ParseFailed


def parse(data: bytes) -> ParsedDocument:
    """Extract the text of a PDF.

    Raises:
        ParseFailed: unreadable, encrypted with a password, or without text.
    """
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PdfStreamError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseFailed("PDF is encrypted with a password")
        pages = []
        for page in reader.pages:
            pages.append(clean_text(page.extract_text() or ""))
        info = _info(reader)
    except FileNotDecryptedError:
        raise ParseFailed("PDF is encrypted with a password") from None
    except DependencyError as exc:
        raise ParseFailed(f"PDF could not be read: {exc}") from None
    except (PdfReadError, PdfStreamError) as exc:
        raise ParseFailed(f"PDF could not be read: {exc}") from None
    text = clean_text("\n\n".join(p for p in pages if p.strip()))
    if not text.strip():
        raise ParseFailed(f"PDF has no extractable text ({len(pages)} pages; it may be scanned images)")
    info["pages"] = len(pages)
    title = info.get("title")
    return ParsedDocument(
        text=text,
        title=one_line(title) if isinstance(title, str) and title.strip() else title_from_text(text),
        metadata=plain_metadata(info),
    )


def _info(reader: Any) -> dict[str, Any]:
    try:
        meta = reader.metadata
    except Exception:  # broken /Info dictionaries are common and never fatal
        return {}
    if not meta:
        return {}
    out: dict[str, Any] = {}
    for key in ("title", "author", "subject", "creator", "producer"):
        try:
            value = getattr(meta, key)
        except Exception:
            continue
        if isinstance(value, str) and value.strip():
            out[key] = value
    for key in ("creation_date", "modification_date"):
        try:
            value = getattr(meta, key)
        except Exception:
            continue
        if value is not None:
            out[key] = value.isoformat()
    return out
