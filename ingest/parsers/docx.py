"""DOCX: paragraphs and tables in document order, as markdown, with python-docx.

Headings (``Heading N``, ``Title``) become ``#`` lines, list paragraphs ``-`` items, tables markdown
tables. Before python-docx opens the package, the zip directory is checked: python-docx loads every
part into memory, so a package that would expand far beyond its size (a zip bomb) fails here with that
reason instead of at the sandbox's memory limit. python-docx parses XML with entity resolution off, so
an external entity cannot pull in local files.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from ingest.document import ParsedDocument, clean_text, join_blocks, one_line, plain_metadata, title_from_text
from ingest.errors import ParseFailed

MAX_EXPANDED_BYTES = 512 * 1024 * 1024
MAX_RATIO = 200
_HEADING_STYLE = re.compile(r"heading\s*([1-9])", re.IGNORECASE)


def parse(data: bytes) -> ParsedDocument:
    """Extract the text of a DOCX document.

    Raises:
        ParseFailed: not a readable DOCX package, a zip bomb, or no text.
    """
    names = check_package(data)
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = [b for b in (_block(item) for item in document.iter_inner_content()) if b]
        # without docProps/core.xml python-docx invents defaults (title "Word Document"): ignore them
        props = _properties(document) if "docProps/core.xml" in names else {}
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ParseFailed(f"DOCX could not be read: {type(exc).__name__}: {exc}") from None
    except SyntaxError as exc:  # lxml's XMLSyntaxError derives from it
        raise ParseFailed(f"DOCX could not be read: its XML is broken ({exc})") from None
    text = clean_text(join_blocks(blocks))
    if not text.strip():
        raise ParseFailed("DOCX has no text")
    title = props.get("title")
    return ParsedDocument(
        text=text,
        title=one_line(title) if isinstance(title, str) and title.strip() else title_from_text(text),
        metadata=plain_metadata(props),
    )


def check_package(data: bytes) -> set[str]:
    """Refuse a zip whose declared expansion is a bomb (the zip reader caps members at that size).

    Returns:
        The member names of the package.

    Raises:
        ParseFailed: not a zip, or it would expand beyond ``MAX_EXPANDED_BYTES`` or ``MAX_RATIO``.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ParseFailed(f"DOCX could not be read: not a valid zip package ({exc})") from None
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if total > MAX_EXPANDED_BYTES or (total > 16 * 1024 * 1024 and total / packed > MAX_RATIO):
        raise ParseFailed(
            f"DOCX looks like a zip bomb: {len(data)} bytes would expand to {total // (1024 * 1024)} MB"
        )
    return {i.filename for i in infos}


def _block(item: Any) -> str:
    if hasattr(item, "rows"):
        return _table(item)
    text = " ".join((item.text or "").split())
    if not text:
        return ""
    style = _style_name(item)
    m = _HEADING_STYLE.search(style)
    if style.lower() == "title":
        return f"# {text}"
    if m:
        return "#" * min(6, int(m.group(1))) + " " + text
    if style.lower().startswith("list") or _is_numbered(item):
        marker = "1." if "number" in style.lower() else "-"
        return f"{marker} {text}"
    return text


def _style_name(paragraph: Any) -> str:
    try:
        return str(paragraph.style.name or "")
    except Exception:  # a missing or broken style definition
        return ""


def _is_numbered(paragraph: Any) -> bool:
    ppr = paragraph._p.pPr
    return ppr is not None and ppr.numPr is not None


def _table(table: Any) -> str:
    rows: list[list[str]] = []
    for row in table.rows:
        cells = [" ".join(cell.text.split()).replace("|", "\\|") for cell in row.cells]
        if any(cells):
            rows.append(cells)
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    lines = []
    for i, row in enumerate(rows):
        lines.append("| " + " | ".join(row + [""] * (width - len(row))) + " |")
        if i == 0:
            lines.append("|" + " --- |" * width)
    return "\n".join(lines)


def _properties(document: Any) -> dict[str, Any]:
    props = document.core_properties
    out: dict[str, Any] = {}
    for key in ("title", "author", "subject", "last_modified_by", "created", "modified"):
        try:
            value = getattr(props, key)
        except Exception:  # malformed core.xml values
            continue
        if value not in (None, ""):
            out[key] = value
    return out
