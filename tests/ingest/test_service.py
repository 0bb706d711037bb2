"""Intake end to end: real files, real git, real SQLite, real parser processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest.naming import base_slug, display_name, origin_key
from ingest.service import deleted_source, intake_bytes, intake_file, version_id, versions_with_content
from ingest.sniff import EXTENSIONS
from store.db import make_engine, make_session_factory
from store.models import Base, Job, Source
from tests.ingest.conftest import LIMITS

ROOT = Path(__file__).resolve().parents[2]


def _copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(src.read_bytes())
    return dest


@pytest.mark.parametrize(
    ("relative", "media_type", "title"),
    [
        ("ops/dfds-postmortems/docs/PM2020-001 - Inotify file watches exhaustion.md", "text/markdown",
         "Inotify file watches exhaustion"),
        ("ops/prometheus-runbooks/runbooks/kubernetes/KubePodCrashLooping.md", "text/markdown",
         "Kube Pod Crash Looping"),
        ("ops/moj-runbooks/add-a-new-runbook.html.md.erb", "text/x-erb-markdown", "Add a new runbook"),
    ],
)
def test_new_document_is_stored_recorded_and_queued(relative, media_type, title, shared_data, inbox, intake,
                                                     session, store):
    path = _copy(shared_data / relative, inbox / "team" / Path(relative).name)
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()

    result = intake(path)

    assert result.status == "new", result.reason
    assert result.source_id == sha
    source = session.get(Source, sha)
    assert source.status == "pending"
    assert source.media_type == media_type
    assert source.title == title
    assert source.origin == f"team/{path.name}"
    assert source.origin_key == f"team/{path.name}".casefold()
    assert source.size == len(data)
    assert source.version == 1
    assert source.previous_id is None
    assert "<%" not in source.text
    # raw bytes in their own commit, found by the Lore-Source trailer
    assert source.raw_path == f"raw/{base_slug(path.name)}.{EXTENSIONS[media_type]}"
    assert store.read(source.raw_path).content == data
    head = store.log(limit=1)[0]
    assert head.trailers == {"Lore-Source": [sha]}
    assert store.changed_paths(head.parents[0], head.id) == [source.raw_path]
    # one extract job, keyed by content
    (job,) = session.scalars(select(Job)).all()
    assert result.job_ids == [job.id]
    assert (job.kind, job.key, job.state) == ("extract", f"extract:{sha}", "queued")
    assert job.payload == {"source_id": sha, "previous_id": None}
    assert job.source_id == sha


def test_known_content_is_skipped_without_commit_or_job(inbox, intake, session, store):
    path = inbox / "note.md"
    path.write_bytes(b"# Note\n\nSame bytes twice.\n")
    first = intake(path)
    head = store.head()
    again = intake(path)
    assert again.status == "known"
    assert again.source_id == first.source_id
    assert again.job_ids == []
    assert "note.md" in again.reason
    assert store.head() == head
    assert len(session.scalars(select(Job)).all()) == 1


def test_changed_file_at_a_known_path_is_a_new_version(inbox, intake, session, store):
    path = inbox / "runbooks" / "Deploy.md"
    path.parent.mkdir()
    path.write_bytes(b"# Deploy\n\nUse the blue pool.\n")
    v1 = intake(path)
    path.write_bytes(b"# Deploy\n\nUse the green pool.\n")
    v2 = intake(path)
    (inbox / "runbooks" / "deploy.md").write_bytes(b"# Deploy\n\nUse the red pool.\n")  # same key, case-folded
    path.unlink()
    v3 = intake(inbox / "runbooks" / "deploy.md")

    assert [v1.status, v2.status, v3.status] == ["new", "new_version", "new_version"]
    s1, s2, s3 = (session.get(Source, r.source_id) for r in (v1, v2, v3))
    assert [s.version for s in (s1, s2, s3)] == [1, 2, 3]
    assert (s2.previous_id, s3.previous_id) == (s1.id, s2.id)
    assert [s.slug for s in (s1, s2, s3)] == ["deploy", "deploy-v2", "deploy-v3"]
    jobs = {j.source_id: j for j in session.scalars(select(Job))}
    assert jobs[s2.id].payload == {"source_id": s2.id, "previous_id": s1.id}
    assert jobs[s3.id].payload == {"source_id": s3.id, "previous_id": s2.id}
    # every version's bytes are kept
    assert store.read("raw/deploy.md").content == b"# Deploy\n\nUse the blue pool.\n"
    assert store.read("raw/deploy-v2.md").content == b"# Deploy\n\nUse the green pool.\n"


def test_bytes_of_an_earlier_replaced_version_are_a_new_version_again(inbox, intake, session, store):
    path = inbox / "adr.md"
    first, second = b"# ADR\n\nUse queues.\n", b"# ADR\n\nUse streams.\n"
    path.write_bytes(first)
    v1 = intake(path)
    path.write_bytes(second)
    v2 = intake(path)
    session.get(Source, v1.source_id).status = "replaced"  # what v2's extraction does
    path.write_bytes(first)  # a revert
    v3 = intake(path)
    assert v3.status == "new_version"
    assert v3.source_id == version_id(v1.source_id, 1) != v1.source_id
    row = session.get(Source, v3.source_id)
    assert (row.version, row.previous_id, row.slug) == (3, v2.source_id, "adr-v3")
    assert store.read(row.raw_path).version == store.read("raw/adr.md").version  # the same blob
    assert intake(path).status == "known"  # the current version already has these bytes
    session.get(Source, v2.source_id).status = "replaced"  # what v3's extraction does
    path.write_bytes(second)
    v4 = intake(path)
    assert (v4.status, v4.source_id) == ("new_version", version_id(v2.source_id, 1))
    assert [s.id for s in versions_with_content(session, v2.source_id)] == [v2.source_id, v4.source_id]


def test_same_bytes_under_a_new_name_are_a_copy_until_the_old_file_is_gone(inbox, intake, session, store, upload):
    old = inbox / "notes" / "ledger.md"
    old.parent.mkdir()
    old.write_bytes(b"# Ledger\n\nBalances live in PostgreSQL.\n")
    first = intake(old)
    session.get(Source, first.source_id).status = "done"
    new = inbox / "decisions" / "ledger-storage.md"
    new.parent.mkdir()
    new.write_bytes(old.read_bytes())
    assert intake(new).status == "known"  # the old file is still there: a copy
    assert upload(old.read_bytes(), "ledger-storage.md").status == "known"
    assert deleted_source(session, old, root=inbox) is None  # still there
    old.unlink()
    assert deleted_source(session, old, root=inbox).id == first.source_id
    moved = intake(new)
    assert (moved.status, moved.source_id) == ("moved", first.source_id)
    assert len(moved.job_ids) == 1  # its source page shows the new name
    row = session.get(Source, first.source_id)
    assert (row.origin, row.origin_key, row.version) == ("decisions/ledger-storage.md",) * 2 + (1,)
    assert deleted_source(session, old, root=inbox) is None  # nothing is current under the old name now
    assert intake(new).status == "known"
    lone = intake_file(session, store, new, root=None, **LIMITS)  # a lone file knows nothing of folders
    assert lone.status == "known"


def test_same_name_in_another_folder_is_another_document(inbox, intake):
    for folder, body in (("a", b"# Readme\n\nalpha\n"), ("b", b"# Readme\n\nbeta\n")):
        (inbox / folder).mkdir()
        (inbox / folder / "README.md").write_bytes(body)
    first = intake(inbox / "a" / "README.md")
    second = intake(inbox / "b" / "README.md")
    assert (first.status, second.status) == ("new", "new")


def test_parse_failure_keeps_the_bytes_and_queues_nothing(inbox, intake, session, store):
    path = inbox / "scan.pdf"
    path.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 4)
    result = intake(path)
    assert result.status == "failed"
    assert result.reason.startswith("PDF")
    source = session.get(Source, result.source_id)
    assert (source.status, source.error, source.text) == ("failed", result.reason, None)
    assert store.read(source.raw_path).content == path.read_bytes()
    assert session.scalars(select(Job)).all() == []


def test_binary_named_as_text_fails_but_is_kept(inbox, intake, session, store):
    path = inbox / "diagram.md"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    result = intake(path)
    assert (result.status, result.reason) == ("failed", "looks like binary data (png) named .md")
    source = session.get(Source, result.source_id)
    assert source.raw_path == "raw/diagram.bin"
    assert source.media_type == "application/octet-stream"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: os.symlink("/etc/hostname", d / "link.md") or d / "link.md", "symbolic link"),
        (lambda d: os.mkfifo(d / "pipe.md") or d / "pipe.md", "FIFO"),
        (lambda d: d, "folder"),
        (lambda d: d / "missing.md", "disappeared"),
        (lambda d: (d / "big.md").write_bytes(b"x" * 2048) and d / "big.md", "2.0 KB; the limit is 1.0 KB"),
        (lambda d: (d / "empty.md").write_bytes(b"") or d / "empty.md", "empty"),
        (lambda d: Path("/etc/hostname"), "outside the ingest folder"),
    ],
    ids=["symlink", "fifo", "folder", "missing", "too-big", "empty", "outside"],
)
def test_refusals_store_nothing(make, reason, inbox, intake, session, store):
    head = store.head()
    result = intake(make(inbox), max_bytes=1024)
    assert result.status == "refused"
    assert reason in result.reason
    assert result.source_id is None
    assert result.job_ids == []
    assert session.scalars(select(Source)).all() == []
    assert store.head() == head


def test_without_root_the_path_is_read_but_symlinks_still_refused(tmp_path, session, store):
    from ingest.service import intake_file

    doc = tmp_path / "elsewhere.md"
    doc.write_bytes(b"# Elsewhere\n\ntext\n")
    (tmp_path / "alias.md").symlink_to(doc)
    limits = {"max_bytes": 10_000, "parser_timeout_s": 30, "parser_memory_mb": 512}
    assert intake_file(session, store, doc, root=None, **limits).status == "new"
    linked = intake_file(session, store, tmp_path / "alias.md", root=None, **limits)
    assert linked.status == "refused"
    assert "symbolic link" in linked.reason


def test_upload_names_are_metadata_only(upload, session, store):
    result = upload(b"# Upload\n\nfrom the API\n", "../../etc/\x1b[2Jpasswd\x00.md")
    assert result.status == "new"
    source = session.get(Source, result.source_id)
    assert source.origin == "etc/passwd.md"
    assert source.raw_path == "raw/passwd.md"
    assert store.list("raw/") == ["raw/passwd.md"]


def test_upload_limits(upload):
    assert upload(b"", "a.md").reason == "file is empty"
    too_big = upload(b"x" * 3000, "a.md", max_bytes=1024)
    assert (too_big.status, too_big.reason) == ("refused", "file is 2.9 KB; the limit is 1.0 KB")


def test_upload_with_explicit_key_versions_that_key(upload, session):
    first = upload(b"# Policy\n\nv1\n", "policy (final).md", key="policies/security")
    second = upload(b"# Policy\n\nv2\n", "policy (final) (2).md", key="policies/security")
    assert second.status == "new_version"
    assert session.get(Source, second.source_id).previous_id == first.source_id


def test_raw_path_taken_by_other_bytes_gets_a_distinct_name(upload, store, session):
    store.write({"raw/notes.md": b"left over from another ledger"}, {}, "seed")
    result = upload(b"# Notes\n\nmine\n", "notes.md")
    source = session.get(Source, result.source_id)
    assert source.raw_path == f"raw/notes-{result.source_id[:8]}.md"
    assert store.read("raw/notes.md").content == b"left over from another ledger"


def test_raw_bytes_already_committed_are_reused_without_a_commit(upload, store, session):
    data = b"# Replay\n\nthe ledger was rolled back after git was written\n"
    store.write({"raw/replay.md": data}, {}, "earlier attempt")
    head = store.head()
    result = upload(data, "replay.md")
    assert result.status == "new"
    assert session.get(Source, result.source_id).raw_path == "raw/replay.md"
    assert store.head() == head


def test_names_are_sanitised():
    assert display_name("..\\..\\a/./b/../c\u202e.md") == "a/b/c.md"
    assert display_name("\x00\x01") == "unnamed"
    assert origin_key("Team/ReadMe.MD") == "team/readme.md"
    assert base_slug("access-eks-cluster.html.md.erb") == "access-eks-cluster"
    assert base_slug("Kubernetes 1.24.md") == "kubernetes-1.24"
    assert base_slug("....md")


_RACE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from ingest.service import intake_file
    from store.db import make_engine, make_session_factory, unit_of_work
    from store.git_store import GitStore
    engine = make_engine("sqlite:///" + sys.argv[2])
    with unit_of_work(make_session_factory(engine)) as session:
        r = intake_file(session, GitStore(Path(sys.argv[3]), refresh_worktree=False), Path(sys.argv[4]),
                        root=Path(sys.argv[5]), max_bytes=10**6, parser_timeout_s=30, parser_memory_mb=512)
    print(r.status)
    """
)


def test_concurrent_intake_of_one_file_makes_one_source(tmp_path, store, inbox):
    db = tmp_path / "race.db"
    engine = make_engine(f"sqlite:///{db}")
    Base.metadata.create_all(engine)
    (inbox / "shared.md").write_bytes(b"# Shared\n\ndropped once, seen by two watchers\n")
    args = [str(ROOT), str(db), str(store.root), str(inbox / "shared.md"), str(inbox)]
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACE, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    statuses = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert statuses == ["known", "known", "new"]
    with make_session_factory(engine)() as s:
        assert len(s.scalars(select(Source)).all()) == 1
        assert len(s.scalars(select(Job)).all()) == 1
    assert store.list("raw/") == ["raw/shared.md"]
    engine.dispose()


def test_intake_bytes_is_the_same_path_as_files(session, store):
    result = intake_bytes(
        session, store, b"plain words\n", "words.txt", max_bytes=100, parser_timeout_s=30, parser_memory_mb=512
    )
    assert result.status == "new"
    assert session.get(Source, result.source_id).media_type == "text/plain"
