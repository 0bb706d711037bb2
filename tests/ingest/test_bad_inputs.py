"""Hostile and broken files: each ends in a clear state, in bounded time, reading nothing outside the folder.

The corpus is ``tests/fixtures/bad/`` plus the files ``tests/fixtures/make_bad.py`` makes at test time
(FIFO, socket, symlinks to ``/etc``, a 1 GB sparse file, zip and gzip bombs, pathological names ...).
Every case states which outcomes are correct and what the reason must say.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from store.models import Job, Source

_SPEC = importlib.util.spec_from_file_location(
    "make_bad", Path(__file__).resolve().parents[1] / "fixtures" / "make_bad.py"
)
assert _SPEC is not None
assert _SPEC.loader is not None
make_bad = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(make_bad)

PASSWD_MARK = b"root:x:0:0"


def test_committed_corpus_matches_its_generator(tmp_path):
    make_bad.write_committed(tmp_path)
    committed = sorted(p.name for p in make_bad.BAD_DIR.iterdir())
    assert committed == sorted(make_bad.COMMITTED)
    for name in committed:
        assert (tmp_path / name).read_bytes() == (make_bad.BAD_DIR / name).read_bytes(), name
    assert len(make_bad.case_ids()) >= 30


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case_id", make_bad.case_ids())
def test_hostile_input_ends_in_a_clear_state(case_id, inbox, intake, session, store):
    statuses, reason = make_bad.expectation(case_id)
    path = make_bad.materialise(case_id, inbox)
    original = path.read_bytes() if _is_plain_file(path, inbox) else None

    result = intake(path, parser_timeout_s=20.0, parser_memory_mb=512)

    assert result.status in statuses, (result.status, result.reason)
    if result.status in ("failed", "refused"):
        assert result.reason
        assert reason.lower() in result.reason.lower(), result.reason
    sources = session.scalars(select(Source)).all()
    raw_paths = store.list("raw/")
    if result.status == "refused":
        assert sources == []
        assert raw_paths == []
        assert result.source_id is None
        return
    (source,) = sources
    assert source.id == result.source_id
    assert source.status == ("failed" if result.status == "failed" else "pending")
    assert (source.error is not None) == (result.status == "failed")
    # the raw copy is exactly the file's bytes, under raw/ whatever the name said
    assert raw_paths == [source.raw_path]
    assert source.raw_path.startswith("raw/")
    assert ".." not in source.raw_path
    assert store.read(source.raw_path).content == original
    # the name is metadata: no control characters, no climbing segments
    assert not any(ch < " " or ch in "\x7f\u202e" for ch in source.origin)
    assert "../" not in source.origin
    assert not source.origin.startswith("/")
    jobs = session.scalars(select(Job)).all()
    assert len(jobs) == (1 if result.status == "new" else 0)
    text = source.text or ""
    assert "\x00" not in text
    assert "\x1b" not in text
    assert PASSWD_MARK.decode() not in text


def _is_plain_file(path: Path, inbox: Path) -> bool:
    try:
        inside = path.resolve().is_relative_to(inbox.resolve())
    except OSError:
        return False
    return inside and path.is_file() and not path.is_symlink() and path.stat().st_size < 64 * 1024 * 1024


def test_active_content_never_reaches_the_text(inbox, intake, session):
    for case_id in ("html-scripts.html", "md-raw-html-js.md", "erb-with-code.html.md.erb"):
        result = intake(make_bad.materialise(case_id, inbox))
        assert result.status == "new", result.reason
        text = session.get(Source, result.source_id).text
        for needle in ("<script", "alert('owned')", "document.write", "fetch(", "system(", "File.read", "<style"):
            assert needle not in text, (case_id, needle)
    html = session.scalars(select(Source).where(Source.origin == "html-scripts.html")).one()
    assert "[workers](https://example.org/workers)" in html.text
    assert "javascript:" not in html.text
    assert "Home | Docs" not in html.text
    assert html.title == "Release notes"


def test_duplicate_content_under_two_names_is_one_source(inbox, intake, session, store):
    body = b"# Shared\n\nThe same bytes under two names.\n"
    (inbox / "first.md").write_bytes(body)
    (inbox / "copy of first.md").write_bytes(body)
    one = intake(inbox / "first.md")
    two = intake(inbox / "copy of first.md")
    assert (one.status, two.status) == ("new", "known")
    assert one.source_id == two.source_id
    assert "first.md" in two.reason
    assert len(session.scalars(select(Source)).all()) == 1
    assert len(session.scalars(select(Job)).all()) == 1
    assert store.list("raw/") == ["raw/first.md"]


@pytest.mark.timeout(60)
def test_file_still_being_written_is_refused_not_half_ingested(inbox, intake, session):
    path = inbox / "growing.md"
    path.write_bytes(b"# Growing\n\n" + b"line of text\n" * 200_000)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time\n"
            "with open(sys.argv[1], 'ab', buffering=0) as f:\n"
            "    while True:\n"
            "        f.write(b'more text\\n')\n",
            str(path),
        ]
    )
    try:
        time.sleep(0.2)
        outcomes = []
        for _ in range(20):
            result = intake(path, max_bytes=1024 * 1024 * 1024)
            outcomes.append(result)
            if result.status == "refused":
                break
    finally:
        writer.kill()
        writer.wait()
    refused = [r for r in outcomes if r.status == "refused"]
    assert refused, [r.status for r in outcomes]
    assert "changed while reading" in refused[0].reason
    # whatever was refused left nothing behind; only consistent reads became sources
    ids = {r.source_id for r in outcomes if r.status in ("new", "new_version")}
    assert {s.id for s in session.scalars(select(Source))} == ids


def test_fifo_never_blocks_even_when_swapped_in_after_the_check(inbox, intake):
    """A FIFO opened for reading blocks until a writer appears; intake must never wait on one."""
    path = inbox / "pipe.md"
    os.mkfifo(path)
    done = threading.Event()
    results = []

    def run():
        results.append(intake(path))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(10), "intake blocked on a FIFO"
    assert results[0].status == "refused"
    assert "FIFO" in results[0].reason


_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], str | bytes):
        _OPENED.append(os.fsdecode(args[0]))


_AUDIT_INSTALLED: list[bool] = []


@pytest.mark.parametrize(
    "case_id", ["symlink-to-etc-passwd", "through-dir-symlink", "absolute-etc-passwd", "outside-root-dotdot"]
)
def test_nothing_outside_the_folder_is_even_opened(case_id, inbox, intake):
    """Python's audit hook sees every open() and os.open() of this process: none may touch the target."""
    global _OPENED
    if not _AUDIT_INSTALLED:
        sys.addaudithook(_audit)
        _AUDIT_INSTALLED.append(True)
    path = make_bad.materialise(case_id, inbox)
    outside = {os.path.realpath("/etc/passwd"), os.path.realpath(inbox.parent / "outside.md")}
    _OPENED = []
    try:
        result = intake(path)
    finally:
        opened, _OPENED = _OPENED, None
    assert result.status == "refused"
    for name in opened:
        assert os.path.basename(name) not in ("passwd", "outside.md"), name
        if os.path.isabs(name):
            assert os.path.realpath(name) not in outside, name
