"""Parsers: one module per format, each ``parse(data: bytes) -> ParsedDocument``.

They run inside the sandbox child process (``ingest.sandbox``), never in the caller: a parser may be
slow, greedy or crash on hostile input, and the sandbox bounds all three. ``parse_document`` picks the
parser by the sniffed media type and imports it only then, so the child loads just what it needs.
"""

from __future__ import annotations

import importlib

from ingest import sniff
from ingest.document import ParsedDocument
from ingest.errors import ParseFailed

PARSERS = {
    sniff.PDF: "pdf",
    sniff.DOCX: "docx",
    sniff.HTML: "html",
    sniff.MARKDOWN: "markdown",
    sniff.ERB_MARKDOWN: "erb_markdown",
    sniff.TEXT: "text",
}

#: How each format is named in failure reasons ("PDF could not be read: ...").
LABELS = {
    sniff.PDF: "PDF",
    sniff.DOCX: "DOCX",
    sniff.HTML: "HTML",
    sniff.MARKDOWN: "Markdown",
    sniff.ERB_MARKDOWN: "Markdown (ERB)",
    sniff.TEXT: "Text",
}


def parse_document(data: bytes, media_type: str) -> ParsedDocument:
    """Parse ``data`` with the parser for ``media_type`` (in the current process).

    Raises:
        ParseFailed: no parser for the type, or the parser could not read the document.
    """
    module_name = PARSERS.get(media_type)
    if module_name is None:
        raise ParseFailed(f"no parser for media type {media_type!r}")
    module = importlib.import_module(f"ingest.parsers.{module_name}")
    doc: ParsedDocument = module.parse(data)
    return doc
