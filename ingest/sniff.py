"""Type sniffing: decide what a document is from its bytes, never from its name.

The name is only a hint between two text types (a ``.md`` file with no markdown syntax is still
markdown) and words the refusal message ("looks like binary data (zip) named .md"). Decisions, in order:

1. empty -> refused;
2. ``%PDF-`` -> PDF; a zip holding ``word/document.xml`` -> DOCX; any other zip or known binary
   signature -> refused, named by its signature;
3. a byte-order mark picks UTF-8/16/32; otherwise the bytes must be valid UTF-8 (NUL bytes and many
   control characters mean binary);
4. text: YAML front matter (``---`` ... ``---``) -> markdown, or ERB markdown when the body holds
   ``<% %>`` tags (the ``.html.md.erb`` runbooks); an ``<html>`` document -> HTML; markdown syntax or a
   markdown name -> markdown; anything else -> plain text.

All checks are linear in the input and look at bounded prefixes, so hostile input cannot make them slow.
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from dataclasses import dataclass

from ingest.errors import Unsupported

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
ERB_MARKDOWN = "text/x-erb-markdown"
TEXT = "text/plain"

#: File extension used for ``raw/<slug>.<ext>`` per media type (content decides, not the name).
EXTENSIONS = {PDF: "pdf", DOCX: "docx", HTML: "html", MARKDOWN: "md", ERB_MARKDOWN: "md.erb", TEXT: "txt"}
MEDIA_TYPES = tuple(EXTENSIONS)

_MARKDOWN_NAMES = (".md", ".markdown", ".mdown", ".mkd", ".mdx", ".erb")
_TEXT_NAMES = {"md", "markdown", "mdown", "mkd", "mdx", "txt", "text", "html", "htm", "erb", "rst", "csv", "log"}

# Signatures of binary formats, used to name what a refused file looks like.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "old Office document (.doc/.xls)"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"OggS", "ogg"),
    (b"ID3", "mp3"),
    (b"RIFF", "RIFF media"),
    (b"\x00asm", "WebAssembly"),
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v\x1b")
_CONTROL_SAMPLE = 65_536
_FRONT_MATTER_LINES = 400
_ERB_TAG = re.compile(r"<%[^%\n]{0,2000}%>")
_HTML_START = re.compile(
    r"\A(?:\s|<\?xml[^>]{0,500}\?>|<!--.{0,2000}?-->)*<(?:!doctype\s+html|html[\s>])", re.IGNORECASE | re.DOTALL
)
_HTML_BODY = re.compile(r"<(?:head|body)[\s>]", re.IGNORECASE)
_MD_HEADING = re.compile(r"#{1,6}\s+\S")
_MD_LIST = re.compile(r"\s{0,6}(?:[-*+]|\d{1,9}[.)])\s+\S")
_MD_LINK = re.compile(r"\[[^\[\]\n]{1,300}\]\([^()\s]{1,1000}\)")


@dataclass(frozen=True)
class Sniffed:
    """What a document is.

    Attributes:
        media_type: one of ``MEDIA_TYPES``.
        ext: extension for the raw copy in the repository.
        encoding: the text encoding that decoded it (None for PDF and DOCX).
    """

    media_type: str
    ext: str
    encoding: str | None = None


def sniff(data: bytes, name: str = "") -> Sniffed:
    """Decide the document type of ``data``.

    Args:
        data: the raw bytes.
        name: the file or upload name, a hint only (markdown vs. plain text, wording of refusals).

    Returns:
        The sniffed type.

    Raises:
        Unsupported: empty, binary, or not decodable as text; ``reason`` says which.
    """
    if not data:
        raise Unsupported("file is empty")
    head = data[:1024]
    pdf_at = head.find(b"%PDF-")
    if pdf_at == 0 or (pdf_at > 0 and not head[:pdf_at].strip()):
        return Sniffed(PDF, EXTENSIONS[PDF])
    if data.startswith(_ZIP_MAGIC):
        kind = _zip_kind(data)
        if kind == "docx":
            return Sniffed(DOCX, EXTENSIONS[DOCX])
        raise Unsupported(f"looks like binary data ({kind}){_named(name)}")
    text, encoding = decode_text(data, name)
    if pdf_at > 0:  # "%PDF-" after text-looking junk: a PDF with a preamble, still a PDF
        return Sniffed(PDF, EXTENSIONS[PDF])
    media_type = classify_text(text, name)
    return Sniffed(media_type, EXTENSIONS[media_type], encoding)


def decode_text(data: bytes, name: str = "") -> tuple[str, str]:
    """Decode document bytes as text: a BOM picks UTF-8/16/32, otherwise strict UTF-8.

    Returns:
        ``(text, encoding)``; the text has no BOM.

    Raises:
        Unsupported: the bytes are binary or not valid in the encoding.
    """
    if not data:
        raise Unsupported("file is empty")
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise Unsupported(f"not valid {label} text ({_where(exc)}){_named(name)}") from None
            _check_controls(text, name)
            return text.lstrip("\ufeff"), codec
    if b"\x00" in data[:8192]:
        raise Unsupported(_binary_reason(data, name))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        magic = _magic_name(data)
        if magic:
            raise Unsupported(f"looks like binary data ({magic}){_named(name)}") from None
        raise Unsupported(
            f"not valid UTF-8 text ({_where(exc)}){_named(name)}; save it as UTF-8"
        ) from None
    _check_controls(text, name)
    return text, "utf-8"


def classify_text(text: str, name: str = "") -> str:
    """Pick the text media type of decoded ``text`` (see the module docstring for the rules)."""
    body_start = front_matter_end(text)
    if body_start is not None:
        return ERB_MARKDOWN if _ERB_TAG.search(text, body_start) else MARKDOWN
    if _HTML_START.match(text[:8192]):
        return HTML
    stripped = text.lstrip()[:4096]
    if stripped.startswith("<") and _HTML_BODY.search(stripped) and "\n#" not in stripped:
        return HTML
    if _ERB_TAG.search(text[:262_144]):
        return ERB_MARKDOWN
    if name.lower().endswith(_MARKDOWN_NAMES) or _looks_like_markdown(text):
        return MARKDOWN
    return TEXT


def front_matter_end(text: str) -> int | None:
    """Offset where the body starts when ``text`` opens with a ``---`` front matter block, else None.

    The block must close (``---`` or ``...`` on a line of its own) within the first lines; an unclosed
    opening ``---`` is a horizontal rule, not front matter.
    """
    start = 1 if text.startswith("\ufeff") else 0
    first_nl = text.find("\n", start, start + 64)
    if first_nl < 0 or text[start:first_nl].rstrip() != "---":
        return None
    pos = first_nl + 1
    for _ in range(_FRONT_MATTER_LINES):
        nl = text.find("\n", pos, pos + 10_000)
        line = text[pos:] if nl < 0 else text[pos:nl]
        if len(line) > 4096:
            return None
        if line.rstrip() in ("---", "..."):
            return len(text) if nl < 0 else nl + 1
        if nl < 0:
            return None
        pos = nl + 1
    return None


def _looks_like_markdown(text: str) -> bool:
    score = 0
    headings = 0
    for raw in text[:200_000].splitlines()[:2000]:
        line = raw[:1000]
        if _MD_HEADING.match(line):
            headings += 1
            score += 2
        elif line.startswith("```") or line.startswith("~~~"):
            score += 2
        elif _MD_LIST.match(line) or (line.startswith("|") and line.rstrip().endswith("|")):
            score += 1
        if _MD_LINK.search(line):
            score += 1
        if score >= 4 or (headings and score >= 3):
            return True
    return False


def _zip_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist()[:10_000])
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return "damaged zip"
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        return "zip: xlsx spreadsheet"
    if "ppt/presentation.xml" in names:
        return "zip: pptx presentation"
    if "mimetype" in names and any(n.startswith("META-INF/") for n in names):
        return "zip: OpenDocument or EPUB"
    return "zip"


def _check_controls(text: str, name: str) -> None:
    if "\x00" in text:
        raise Unsupported(f"contains NUL bytes, looks like binary data{_named(name)}")
    sample = text[:_CONTROL_SAMPLE]
    bad = sum(1 for ch in sample if ch < " " and ch not in _ALLOWED_CONTROLS)
    if bad > max(8, len(sample) // 100):
        raise Unsupported(f"looks like binary data ({bad} control characters){_named(name)}")


def _binary_reason(data: bytes, name: str) -> str:
    magic = _magic_name(data)
    if magic:
        return f"looks like binary data ({magic}){_named(name)}"
    sample = data[:4096]
    odd_nuls = sample[1::2].count(0)
    even_nuls = sample[0::2].count(0)
    if len(sample) >= 8 and max(odd_nuls, even_nuls) >= len(sample) // 2 * 0.9:
        return f"looks like UTF-16 text without a byte-order mark{_named(name)}; save it as UTF-8"
    return f"looks like binary data (contains NUL bytes){_named(name)}"


def _magic_name(data: bytes) -> str | None:
    for magic, label in _MAGIC:
        if data.startswith(magic):
            return label
    return None


def _where(exc: UnicodeDecodeError) -> str:
    bad = exc.object[exc.start : exc.start + 1]
    return f"invalid byte 0x{bad.hex()} at offset {exc.start}" if bad else f"error at offset {exc.start}"


def _named(name: str) -> str:
    """`` named .md`` when the name has a short text-type extension, else empty."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if "." not in base:
        return ""
    ext = base.rsplit(".", 1)[-1].lower()
    return f" named .{ext}" if ext in _TEXT_NAMES else ""
