"""The watcher offers each settled file once per change, skips ignored names, and stops cleanly."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest.service import intake_file
from ingest.watcher import Watcher
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import Base, Job

IGNORE = [".*", "*.tmp", "*.part", "*.py", "*.pyc", "__pycache__"]


class Clock:
    """A settable wall clock (seconds), starting now so file mtimes compare sensibly."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _watcher(folder: Path, seen: list[Path], settle_s: float = 0.0, clock=time.time) -> Watcher:
    return Watcher(folder, seen.append, IGNORE, settle_s=settle_s, rescan_interval_s=3600, clock=clock)


def test_scan_offers_every_file_once_and_skips_ignored_names(inbox):
    for rel in ("a.md", "deep/er/b.html", ".hidden.md", "c.md.tmp", "d.md.part", "__init__.py",
                "__pycache__/x.md", ".git/HEAD", "deep/.obsidian/workspace.md", "deep/er/e.pyc"):
        (inbox / rel).parent.mkdir(parents=True, exist_ok=True)
        (inbox / rel).write_text("x")
    seen: list[Path] = []
    watcher = _watcher(inbox, seen)
    assert watcher.scan_once() == [inbox / "a.md", inbox / "deep/er/b.html"]
    assert seen == [inbox / "a.md", inbox / "deep/er/b.html"]
    assert watcher.scan_once() == []  # unchanged files are not offered again

    (inbox / "a.md").write_text("changed, and longer")
    (inbox / "deep/er/b.html").unlink()
    assert watcher.scan_once() == [inbox / "a.md"]


def test_partial_download_names_are_ignored_even_without_globs(inbox):
    for name in ("a.md.part", "b.pdf.crdownload", "~$report.docx", "c.tmp", "d.md"):
        (inbox / name).write_text("x")
    seen: list[Path] = []
    Watcher(inbox, seen.append, [], settle_s=0, rescan_interval_s=3600).scan_once()
    assert seen == [inbox / "d.md"]


def test_file_is_offered_only_after_it_stopped_changing(inbox):
    clock = Clock()
    seen: list[Path] = []
    watcher = _watcher(inbox, seen, settle_s=5.0, clock=clock)
    path = inbox / "upload.pdf"
    path.write_bytes(b"%PDF-1.4 first part")
    os.utime(path, (clock.now, clock.now))
    assert watcher.scan_once() == []
    clock.now += 3
    path.write_bytes(b"%PDF-1.4 first part, second part")  # still being written
    os.utime(path, (clock.now, clock.now))
    assert watcher.scan_once() == []
    clock.now += 3  # 3 s since the last change: not settled yet
    assert watcher.scan_once() == []
    clock.now += 2.5
    assert watcher.scan_once() == [path]
    assert seen == [path]


def test_old_files_are_offered_at_start_up_without_waiting(inbox):
    path = inbox / "old.md"
    path.write_text("# Old\n")
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    seen: list[Path] = []
    assert _watcher(inbox, seen, settle_s=30.0).scan_once() == [path]


def test_special_files_are_offered_without_being_opened(inbox):
    os.mkfifo(inbox / "pipe.md")
    (inbox / "link.md").symlink_to("/etc/passwd")
    offered: list[Path] = []
    done = threading.Event()

    def scan():
        _watcher(inbox, offered).scan_once()
        done.set()

    threading.Thread(target=scan, daemon=True).start()
    assert done.wait(10), "the watcher blocked on a FIFO"
    assert sorted(p.name for p in offered) == ["link.md", "pipe.md"]  # intake refuses them with a reason


def test_a_failing_callback_does_not_stop_the_watcher(inbox):
    (inbox / "a.md").write_text("a")
    (inbox / "b.md").write_text("b")
    calls: list[str] = []

    def on_file(path: Path) -> None:
        calls.append(path.name)
        if path.name == "a.md" and calls.count("a.md") == 1:
            raise RuntimeError("database is locked")

    watcher = Watcher(inbox, on_file, IGNORE, settle_s=0, rescan_interval_s=3600)
    assert watcher.scan_once() == [inbox / "b.md"]
    assert watcher.scan_once() == [inbox / "a.md"]  # offered again on the next scan
    assert calls == ["a.md", "b.md", "a.md"]


@pytest.mark.timeout(60)
def test_live_watch_sees_renamed_files_and_never_partial_ones(inbox):
    offered: list[Path] = []
    arrived = threading.Event()

    def on_file(path: Path) -> None:
        offered.append(path)
        arrived.set()

    (inbox / "before.md").write_text("# There before start-up\n")
    watcher = Watcher(inbox, on_file, IGNORE, settle_s=0.3, rescan_interval_s=3600)
    watcher.start()
    try:
        deadline = time.monotonic() + 20
        while inbox / "before.md" not in offered and time.monotonic() < deadline:
            time.sleep(0.05)
        arrived.clear()
        partial = inbox / "report.md.part"
        with open(partial, "wb") as f:  # a producer writes under a temporary name, then renames
            for _ in range(5):
                f.write(b"chunk of the report\n")
                f.flush()
                time.sleep(0.05)
        (inbox / "sub").mkdir()
        partial.rename(inbox / "sub" / "report.md")
        assert arrived.wait(20), "the renamed file was never offered"
        time.sleep(0.5)
    finally:
        watcher.stop()
    assert offered == [inbox / "before.md", inbox / "sub" / "report.md"]
    assert watcher._thread is None
    assert not any(t.name == "lore-ingest-watcher" for t in threading.enumerate())


def test_a_deleted_file_is_reported_once_it_stayed_gone_and_after_the_new_names(inbox):
    clock = Clock()
    events: list[tuple[str, str]] = []
    watcher = Watcher(inbox, lambda p: events.append(("file", p.name)), IGNORE, settle_s=2.0,
                      rescan_interval_s=3600, clock=clock, on_gone=lambda p: events.append(("gone", p.name)))
    for name in ("a.md", "b.md"):
        (inbox / name).write_text(name)
        os.utime(inbox / name, (clock.now - 60, clock.now - 60))
    watcher.scan_once()
    assert events == [("file", "a.md"), ("file", "b.md")]
    (inbox / "a.md").rename(inbox / "z.md")  # keeps its old mtime: offered at once
    (inbox / "b.md").unlink()
    watcher.scan_once()
    assert events[2:] == [("file", "z.md")]  # the deletions wait for settle_s
    clock.now += 2.5
    watcher.scan_once()
    assert events[3:] == [("gone", "a.md"), ("gone", "b.md")]
    (inbox / "z.md").unlink()
    watcher.observe(inbox / "z.md")  # a delete event
    (inbox / "z.md").write_text("written again")  # an editor's delete-and-write: not a deletion
    clock.now += 2.5
    watcher.scan_once()
    clock.now += 2.5
    watcher.scan_once()
    assert events[5:] == [("file", "z.md")]
    watcher.scan_once()
    assert len(events) == 6  # each reported once


@pytest.mark.timeout(60)
def test_live_watch_reports_a_deleted_file(inbox):
    offered, gone = threading.Event(), threading.Event()
    (inbox / "doc.md").write_text("# Doc\n")
    watcher = Watcher(inbox, lambda p: offered.set(), IGNORE, settle_s=0.2, rescan_interval_s=3600,
                      on_gone=lambda p: gone.set() if p == inbox / "doc.md" else None)
    watcher.start()
    try:
        assert offered.wait(20), "the file was never offered"
        (inbox / "doc.md").unlink()
        assert gone.wait(20), "the deletion was never reported"
    finally:
        watcher.stop()


@pytest.mark.timeout(60)
def test_watcher_to_intake_commits_before_dispatch(tmp_path, inbox, store):
    """The boundary the composition root builds: one unit of work per file, dispatch after commit."""
    engine = make_engine(f"sqlite:///{tmp_path / 'lore.db'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    dispatched: list[tuple[int, str]] = []

    def dispatch(job_ids: list[int]) -> None:
        with factory() as fresh:  # another connection sees the job: it was committed first
            for job_id in job_ids:
                dispatched.append((job_id, fresh.get(Job, job_id).key))

    def on_file(path: Path) -> None:
        with unit_of_work(factory) as session:
            result = intake_file(session, store, path, root=inbox, max_bytes=10**6,
                                 parser_timeout_s=30, parser_memory_mb=512)
        dispatch(result.job_ids)

    for name in ("one.md", "two.txt", "pipe"):
        if name == "pipe":
            os.mkfifo(inbox / name)
        else:
            (inbox / name).write_text(f"# {name}\n\nbody of {name}\n")
    Watcher(inbox, on_file, IGNORE, settle_s=0, rescan_interval_s=3600).scan_once()
    with factory() as s:
        keys = sorted(j.key for j in s.scalars(select(Job)))
    assert sorted(key for _, key in dispatched) == keys
    assert len(keys) == 2
    engine.dispose()
