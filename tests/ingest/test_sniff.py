"""Type sniffing decides from content; the name only breaks ties between text types."""

from __future__ import annotations

import codecs
import io
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import sniff as s
from ingest.errors import Unsupported


def _zip(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in names:
            zf.writestr(name, b"<x/>")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "name", "media_type"),
    [
        (b"%PDF-1.7\n...", "notes.md", s.PDF),
        (b"\n  %PDF-1.4\n...", "", s.PDF),
        (_zip(["[Content_Types].xml", "word/document.xml"]), "report.txt", s.DOCX),
        (b"<!DOCTYPE html><html><body><p>x</p></body></html>", "page.txt", s.HTML),
        (b"<?xml version='1.0'?>\n<!-- c -->\n<html xmlns='http://www.w3.org/1999/xhtml'><p>x</p></html>", "", s.HTML),
        (b"<div><head></head><body>fragment page</body></div>", "", s.HTML),
        (b"---\ntitle: T\n---\n\n# T\n", "notes.txt", s.MARKDOWN),
        (b"---\ntitle: T\n---\n\n# <%= current_page.data.title %>\n", "x.md", s.ERB_MARKDOWN),
        (b"---\ntitle: T\n---\n\nno tags in this one\n", "x.html.md.erb", s.MARKDOWN),
        (b"# Title\n\n- one\n- two\n\nSee [docs](https://example.org).\n", "README", s.MARKDOWN),
        (b"Just a sentence.\nAnd another one.\n", "notes.md", s.MARKDOWN),
        (b"Just a sentence.\nAnd another one.\n", "notes.txt", s.TEXT),
        (b"<div align='center'>logo</div>\n\n# Project\n\nText.\n", "README.md", s.MARKDOWN),
        (b"---\nno closing line\n\nbody\n", "a.txt", s.TEXT),
    ],
)
def test_type_comes_from_content(data, name, media_type):
    found = s.sniff(data, name)
    assert found.media_type == media_type
    assert found.ext == s.EXTENSIONS[media_type]


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (codecs.BOM_UTF8 + "Grüße\n".encode(), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + "Grüße\n".encode("utf-16-le"), "utf-16"),
        (codecs.BOM_UTF16_BE + "Grüße\n".encode("utf-16-be"), "utf-16"),
        (codecs.BOM_UTF32_LE + "Grüße\n".encode("utf-32-le"), "utf-32"),
        ("Grüße\n".encode(), "utf-8"),
    ],
)
def test_text_encodings_with_bom_or_utf8(data, encoding):
    text, used = s.decode_text(data)
    assert (text, used) == ("Grüße\n", encoding)


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"", "a.md", "file is empty"),
        (_zip(["a.txt"]), "a.md", "looks like binary data (zip) named .md"),
        (_zip(["xl/workbook.xml"]), "a.docx", "looks like binary data (zip: xlsx spreadsheet)"),
        (b"PK\x03\x04broken", "a.md", "looks like binary data (damaged zip) named .md"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "a.txt", "looks like binary data (png) named .txt"),
        (b"\x1f\x8b\x08\x00\x00\x00", "notes.html", "looks like binary data (gzip) named .html"),
        (b"caf\xe9\n", "a.md", "not valid UTF-8 text (invalid byte 0xe9 at offset 3) named .md; save it as UTF-8"),
        (codecs.BOM_UTF16_LE + b"\x00\xd8", "a.txt", "not valid UTF-16 text"),
        ("hello there".encode("utf-16-le"), "", "looks like UTF-16 text without a byte-order mark"),
        (b"text\x00more", "", "contains NUL bytes"),
        (b"\x01\x02\x03\x04\x05\x06\x07\x08" * 5 + b"ok", "a.log", "control characters"),
        (b"\xfe\xfd\xfc binary", "photo", "not valid UTF-8 text"),
    ],
)
def test_refusals_say_why(data, name, reason):
    with pytest.raises(Unsupported) as err:
        s.sniff(data, name)
    assert reason in err.value.reason


def test_real_runbooks_and_postmortems_are_recognised(shared_data):
    ops = shared_data / "ops"
    erb = [p for p in (ops / "moj-runbooks").rglob("*.html.md.erb") if b"<%" in p.read_bytes()]
    assert len(erb) > 30
    assert {s.sniff(p.read_bytes(), p.name).media_type for p in erb} == {s.ERB_MARKDOWN}
    for folder in ("prometheus-runbooks/runbooks", "dfds-postmortems/docs"):
        docs = sorted((ops / folder).rglob("*.md"))
        assert docs
        assert {s.sniff(p.read_bytes(), p.name).media_type for p in docs} == {s.MARKDOWN}


def test_front_matter_block_must_close():
    assert s.front_matter_end("---\na: 1\n---\nbody") == len("---\na: 1\n---\n")
    assert s.front_matter_end("---\na: 1\n...\nbody") == len("---\na: 1\n...\n")
    assert s.front_matter_end("---\n" + "a: 1\n" * 1000) is None
    assert s.front_matter_end("--- not\n---\n") is None


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "data",
    [
        b"[" * 2_000_000,
        b"<%" * 1_000_000,
        b"<!--" * 500_000,
        b"---\n" + b"x" * 3_000_000,
        b" " * 3_000_000 + b"<html>",
        b"| " * 1_000_000 + b"\n" + b"# h\n" * 100_000,
    ],
    ids=["brackets", "erb-openers", "comment-openers", "front-matter-long-line", "spaces", "table-pipes"],
)
def test_pathological_text_is_sniffed_in_bounded_time(data):
    assert s.sniff(data, "x").media_type in s.MEDIA_TYPES


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048), st.text(max_size=40))
def test_any_bytes_give_a_type_or_a_reason(data, name):
    reason = ""
    try:
        found = s.sniff(data, name)
    except Unsupported as exc:
        reason = exc.reason
        found = None
    assert bool(reason) != (found is not None)
    assert found is None or found.media_type in s.MEDIA_TYPES
