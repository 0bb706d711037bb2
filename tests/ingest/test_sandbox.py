"""The sandbox turns every way a parser can go wrong into a ParseFailed a person can read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest import sniff
from ingest.errors import ParseFailed
from ingest.sandbox import parse_in_sandbox


def _children() -> list[int]:
    """Live child processes of this test process (zombies excluded)."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def test_wall_clock_limit_kills_the_parser():
    before = _children()
    with pytest.raises(ParseFailed) as err:
        parse_in_sandbox(b"# Title\n\nbody\n" * 200_000, sniff.MARKDOWN, timeout_s=0.01, memory_mb=512)
    assert err.value.reason == "parser ran out of time after 0.01 s"
    assert _children() == before


def test_memory_limit_stops_a_greedy_parse():
    page = b"<html><body>" + b"<p>para <b>bold</b> <i>it</i></p>" * 1_000_000 + b"</body></html>"
    with pytest.raises(ParseFailed) as err:
        parse_in_sandbox(page, sniff.HTML, timeout_s=60, memory_mb=128)
    assert "128 MB memory limit" in err.value.reason


def test_the_same_document_parses_within_a_sane_limit():
    doc = parse_in_sandbox(b"<html><body><p>para</p></body></html>", sniff.HTML, timeout_s=30, memory_mb=256)
    assert doc.text == "para\n"


def test_parser_errors_become_reasons():
    with pytest.raises(ParseFailed) as err:
        parse_in_sandbox(b"PK\x03\x04 not really a zip", sniff.DOCX, timeout_s=30, memory_mb=512)
    assert err.value.reason.startswith("DOCX could not be read: not a valid zip package")


@pytest.mark.parametrize(
    ("data", "media_type", "reason"),
    [
        (b"", sniff.MARKDOWN, "file is empty"),
        (b"x", "application/x-shockwave-flash", "no parser for media type"),
        (b"\xff\xfe\x00\xd8", sniff.TEXT, "not valid UTF-16 text"),
    ],
)
def test_bad_requests_fail_cleanly(data, media_type, reason):
    with pytest.raises(ParseFailed) as err:
        parse_in_sandbox(data, media_type, timeout_s=30, memory_mb=512)
    assert reason in err.value.reason
