"""The git page store against real git in tmp_path: reads, CAS writes, history, paths, locks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.errors import InvalidPath, PageConflict, StoreError, StoreLocked
from store.git_plumbing import check_path
from store.git_store import ABSENT, GitStore

PAGE = "wiki/people/ada.md"


def git(root: Path, *args: str) -> str:
    """Run porcelain git as a person would (own identity), return stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="Person", GIT_AUTHOR_EMAIL="p@example.org",
               GIT_COMMITTER_NAME="Person", GIT_COMMITTER_EMAIL="p@example.org")
    proc = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True)
    return proc.stdout


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    s = GitStore(tmp_path / "wiki", lock_timeout_ms=200)
    s.init()
    return s


def test_init_is_idempotent_and_configured(store: GitStore) -> None:
    first = store.head()
    store.init()
    assert first is not None
    assert store.head() == first
    assert git(store.root, "rev-list", "--count", "main").strip() == "1"
    assert git(store.root, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert git(store.root, "config", "core.filesRefLockTimeout").strip() == "200"
    assert git(store.root, "config", "core.fsync").strip() == "objects,reference"


def test_repository_inside_another_checkout_stays_separate(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "outer")
    inner = GitStore(tmp_path / "data" / "wiki")
    with pytest.raises(StoreError, match="call init"):
        inner.head()
    inner.init()
    inner.write({PAGE: b"x\n"}, {}, "inner write")
    assert (tmp_path / "data" / "wiki" / ".git").is_dir()
    outer_log = subprocess.run(["git", "log"], cwd=tmp_path, capture_output=True, text=True)
    assert outer_log.returncode != 0  # the outer repository still has no commits


def test_write_then_read_many_is_one_commit(store: GitStore) -> None:
    before = store.head()
    result = store.write({PAGE: b"# Ada\n", "raw/a.txt": b"raw bytes"}, {PAGE: ABSENT}, "Add Ada")
    assert result.changed
    assert result.parent == before
    assert result.rebases == 0
    assert store.head() == result.commit
    got = store.read_many([PAGE, "raw/a.txt", "wiki/missing.md"])
    assert got[PAGE].content == b"# Ada\n"
    assert got[PAGE].version == git(store.root, "rev-parse", f"HEAD:{PAGE}").strip()
    assert got["raw/a.txt"].content == b"raw bytes"
    assert got["wiki/missing.md"].content is None
    assert got["wiki/missing.md"].version == ABSENT
    assert git(store.root, "rev-list", "--count", "main").strip() == "2"
    assert store.log(limit=1)[0].paths == ("raw/a.txt", PAGE)


def test_read_absent_at_commit_and_unknown_revision(store: GitStore) -> None:
    assert store.read(PAGE).version == ABSENT
    old = store.head()
    assert old is not None
    store.write({PAGE: b"v1\n"}, {PAGE: ABSENT}, "v1")
    assert store.read(PAGE, at=old).content is None
    assert store.read(PAGE).content == b"v1\n"
    assert store.read("wiki").version == ABSENT  # a directory is not a page
    with pytest.raises(StoreError, match="unknown revision"):
        store.read(PAGE, at="0" * 40)


_SEGMENT = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_characters="/\\\x7f"),
    min_size=1,
    max_size=12,
)


def _valid(path: str) -> bool:
    try:
        check_path(path)
    except InvalidPath:
        return False
    return True


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> GitStore:
    s = GitStore(tmp_path_factory.mktemp("prop") / "wiki")
    s.init()
    return s


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.dictionaries(
        st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join).filter(_valid),
        st.binary(max_size=300),
        min_size=1,
        max_size=3,
    )
)
def test_property_write_then_read_returns_what_was_written(shared_store: GitStore, files: dict) -> None:
    # Each example writes below its own folder; paths that are prefixes of each other are skipped.
    prefix = f"prop/{len(shared_store.log())}/"
    changes = {prefix + path: data for path, data in files.items()}
    if any(q.startswith(p + "/") for p in changes for q in changes):
        return
    shared_store.write(changes, dict.fromkeys(changes, ABSENT), "property example")
    got = shared_store.read_many(changes)
    assert {p: r.content for p, r in got.items()} == changes
    assert all(r.version != ABSENT for r in got.values())


def test_conflict_names_the_changed_paths(store: GitStore) -> None:
    store.write({PAGE: b"v1\n", "wiki/b.md": b"b1\n"}, {}, "seed")
    seen = store.read_many([PAGE, "wiki/b.md"])
    store.write({PAGE: b"v2 by someone else\n"}, {}, "other writer")
    head = store.head()
    with pytest.raises(PageConflict) as info:
        store.write(
            {PAGE: b"mine\n", "wiki/b.md": b"b2\n"},
            {PAGE: seen[PAGE].version, "wiki/b.md": seen["wiki/b.md"].version},
            "mine",
        )
    assert info.value.paths == [PAGE]
    assert PAGE in str(info.value)
    assert store.head() == head
    assert store.read(PAGE).content == b"v2 by someone else\n"
    with pytest.raises(PageConflict, match="wiki/b.md"):
        store.write({"wiki/b.md": b"new\n"}, {"wiki/b.md": ABSENT}, "thought it was absent")


def test_expected_path_not_written_guards_the_write(store: GitStore) -> None:
    store.write({"wiki/source.md": b"s1\n"}, {}, "seed")
    read = store.read("wiki/source.md")
    store.write({"wiki/source.md": b"s2\n"}, {}, "moved")
    with pytest.raises(PageConflict):
        store.write({PAGE: b"derived\n"}, {"wiki/source.md": read.version}, "derived from s1")
    assert store.read(PAGE).version == ABSENT


def outside_commit(root: Path, changes: dict[str, bytes]) -> str:
    """Commit ``changes`` on main with plumbing and a private index, the way another tool would."""
    index = root / ".git" / "outside-index"
    env = {"GIT_INDEX_FILE": str(index)}

    def run(*args: str, data: bytes | None = None) -> str:
        proc = subprocess.run(["git", *args], cwd=root, env={**os.environ, **env}, input=data,
                              capture_output=True, check=True)
        return proc.stdout.decode().strip()

    old = run("rev-parse", "main")
    run("read-tree", old)
    for path, data in changes.items():
        blob = run("hash-object", "-w", "--stdin", data=data)
        run("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    tree = run("write-tree")
    new = run("-c", "user.name=Other", "-c", "user.email=o@example.org", "commit-tree", tree, "-p", old,
              "-m", "concurrent writer")
    run("update-ref", "refs/heads/main", new, old)
    index.unlink()
    return new


def _interleave(monkeypatch: pytest.MonkeyPatch, store: GitStore, changes: dict) -> list[str]:
    """Make a real second writer commit just before ``store`` publishes, once."""
    original = store._publish
    made: list[str] = []

    def publish(new: str, old: str | None) -> bool:
        if not made:
            made.append(outside_commit(store.root, changes))
        return original(new, old)

    monkeypatch.setattr(store, "_publish", publish)
    return made


def test_rebase_when_head_moved_on_other_paths(store: GitStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write({PAGE: b"v1\n"}, {}, "seed")
    seen = store.read(PAGE)
    made = _interleave(monkeypatch, store, {"wiki/other.md": b"other\n"})
    result = store.write({PAGE: b"v2\n"}, {PAGE: seen.version}, "mine")
    assert result.rebases == 1
    assert result.parent == made[0]
    assert store.head() == result.commit
    assert store.read(PAGE).content == b"v2\n"
    assert store.read("wiki/other.md").content == b"other\n"
    parents = git(store.root, "rev-list", "--parents", "main").splitlines()
    assert all(len(line.split()) <= 2 for line in parents)


def test_conflict_when_head_moved_on_our_path(store: GitStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write({PAGE: b"v1\n"}, {}, "seed")
    seen = store.read(PAGE)
    made = _interleave(monkeypatch, store, {PAGE: b"theirs\n"})
    with pytest.raises(PageConflict) as info:
        store.write({PAGE: b"mine\n"}, {PAGE: seen.version}, "mine")
    assert info.value.paths == [PAGE]
    assert store.head() == made[0]
    assert store.read(PAGE).content == b"theirs\n"


def test_blind_write_rebases_over_a_change_to_its_path(
    store: GitStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interleave(monkeypatch, store, {"wiki/log.md": b"theirs\n"})
    result = store.write({"wiki/log.md": b"mine\n"}, {}, "blind")
    assert result.rebases == 1
    assert store.read("wiki/log.md").content == b"mine\n"


def test_delete_removes_file_and_empty_folders(store: GitStore) -> None:
    store.write({PAGE: b"x\n", "wiki/keep.md": b"k\n"}, {}, "seed")
    result = store.write({PAGE: None}, {PAGE: store.read(PAGE).version}, "delete Ada")
    assert result.changed
    assert store.read(PAGE).version == ABSENT
    assert store.list() == ["wiki/keep.md"]
    assert "people" not in git(store.root, "ls-tree", "-d", "HEAD:wiki")
    assert not (store.root / PAGE).exists()
    assert (store.root / "wiki/keep.md").read_bytes() == b"k\n"


def test_identical_content_makes_no_commit(store: GitStore) -> None:
    first = store.write({PAGE: b"same\n"}, {}, "seed")
    again = store.write({PAGE: b"same\n"}, {PAGE: store.read(PAGE).version}, "again")
    assert again == type(again)(first.commit, first.commit, 0, False, {PAGE: first.blobs[PAGE]}, 0)
    assert first.blobs[PAGE] == store.read(PAGE).version
    assert store.write({}, {}, "nothing").changed is False
    assert store.write({"wiki/never.md": None}, {}, "delete absent").changed is False
    assert store.head() == first.commit


def test_trailers_and_message_read_back_by_log(store: GitStore) -> None:
    start = store.head()
    store.write(
        {PAGE: b"a\n"},
        {},
        "Render Ada\n\nFrom two sources.",
        [("Lore-Source", "ab" * 32), ("Lore-Job", "17"), ("Lore-Source", "cd" * 32), ("Assisted-by", "GLM")],
    )
    store.write({"wiki/b.md": b"b\n"}, {}, "Second")
    entries = store.log(since=start)
    assert [c.message for c in entries] == ["Second", "Render Ada\n\nFrom two sources."]
    assert entries[1].trailers == {
        "Lore-Source": ["ab" * 32, "cd" * 32],
        "Lore-Job": ["17"],
        "Assisted-by": ["GLM"],
    }
    assert entries[0].trailers == {}
    assert entries[1].author == "Lore <lore@localhost>"
    assert entries[1].timestamp.tzinfo is not None
    assert entries[0].parents == (entries[1].id,)
    assert len(store.log()) == 3
    assert [c.id for c in store.log(limit=1)] == [entries[0].id]
    with pytest.raises(ValueError, match="trailer"):
        store.write({PAGE: b"z\n"}, {}, "bad", [("Bad Key", "v")])
    with pytest.raises(ValueError, match="trailer"):
        store.write({PAGE: b"z\n"}, {}, "bad", [("Key", "two\nlines")])


def test_history_diff_and_changed_paths(store: GitStore) -> None:
    c1 = store.write({PAGE: b"one\n"}, {}, "v1").commit
    c2 = store.write({PAGE: b"one\ntwo\n", "wiki/index.md": b"i\n"}, {}, "v2").commit
    store.write({"wiki/other.md": b"o\n"}, {}, "unrelated")
    c4 = store.write({PAGE: b"two\n"}, {}, "v3").commit
    history = store.history(PAGE)
    assert [c.message for c in history] == ["v3", "v2", "v1"]
    assert history[1].paths == ("wiki/index.md", PAGE)
    assert [c.id for c in store.history(PAGE, limit=1)] == [c4]
    diff = store.diff(PAGE, c1, c2)
    assert "+two" in diff
    assert PAGE in diff
    assert "-one" in store.diff(PAGE, c2, c4)
    assert store.diff(PAGE, c4, c4) == ""
    assert store.changed_paths(c1, c4) == ["wiki/index.md", "wiki/other.md", PAGE]
    assert store.changed_paths(None, c2) == ["wiki/index.md", PAGE]
    assert store.list("wiki/") == ["wiki/index.md", "wiki/other.md", PAGE]
    assert store.list("wiki/o") == ["wiki/other.md"]
    assert store.list("wiki/", at=c1) == [PAGE]
    with pytest.raises(StoreError):
        store.diff(PAGE, "--output=/tmp/x", c4)


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/", "./a", ".git/config", "x/.GIT/y", "x/.git./y",
     "GIT~1/x", "a\\b", "a\nb", "a\x00b", "a\tb", "a\x7fb"],
)
def test_invalid_paths_rejected(store: GitStore, path: str) -> None:
    head = store.head()
    with pytest.raises(InvalidPath):
        store.write({path: b"x"}, {}, "bad")
    with pytest.raises(InvalidPath):
        store.read(path)
    with pytest.raises(InvalidPath):
        store.write({"ok.md": b"x"}, {path: ABSENT}, "bad expected")
    assert store.head() == head


def test_paths_clashing_with_files_and_folders(store: GitStore) -> None:
    store.write({PAGE: b"x\n"}, {}, "seed")
    with pytest.raises(InvalidPath, match="directory"):
        store.write({"wiki/people": b"x"}, {}, "file over folder")
    with pytest.raises(InvalidPath, match="is a file"):
        store.write({PAGE + "/below": b"x"}, {}, "below a file")
    with pytest.raises(InvalidPath):
        store.write({"a": b"1", "a/b": b"2"}, {}, "both")
    assert store.write({PAGE + "/below": None}, {}, "delete below a file").changed is False
    assert store.read(PAGE).content == b"x\n"


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_lock_recovery(store: GitStore) -> None:
    lock = store.root / ".git/refs/heads/main.lock"
    lock.write_text("0" * 40 + "\n")
    with pytest.raises(StoreLocked):  # fresh: a live writer may hold it
        store.write({PAGE: b"x\n"}, {}, "blocked")
    assert store.recover_stale_locks() == []
    assert lock.exists()
    _age(lock, 3600)
    result = store.write({PAGE: b"x\n"}, {}, "recovers the old lock itself")
    assert result.changed
    assert not lock.exists()


def test_stale_lock_kept_while_a_process_holds_it(store: GitStore) -> None:
    lock = store.root / ".git/packed-refs.lock"
    lock.write_text("")
    _age(lock, 3600)
    with open(lock, "rb") as handle:
        holder = subprocess.Popen(["sleep", "60"], stdin=handle)
    try:
        assert store.recover_stale_locks() == []
    finally:
        holder.kill()
        holder.wait()
    assert store.recover_stale_locks() == [lock]


def test_index_lock_kept_while_git_works_in_the_repository(store: GitStore) -> None:
    lock = store.root / ".git/index.lock"
    lock.write_text("")
    _age(lock, 3600)
    live = subprocess.Popen(["git", "cat-file", "--batch"], cwd=store.root, stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    try:
        # Popen returns after fork; wait until the child really is git (exec done) before asking.
        deadline = time.monotonic() + 10
        while b"git" not in Path(f"/proc/{live.pid}/cmdline").read_bytes().split(b"\0")[0]:
            assert time.monotonic() < deadline, "git cat-file did not start"
            time.sleep(0.01)
        assert store.recover_stale_locks() == []
    finally:
        live.communicate(b"")
    assert store.recover_stale_locks() == [lock]


def test_working_tree_follows_head_and_keeps_local_edits(
    store: GitStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.write({PAGE: b"v1\n", "wiki/b.md": b"b1\n"}, {}, "seed")
    assert (store.root / PAGE).read_bytes() == b"v1\n"
    assert git(store.root, "status", "--porcelain") == ""
    (store.root / "wiki/b.md").write_bytes(b"person's edit\n")
    store.write({PAGE: b"v2\n"}, {}, "machine")
    assert (store.root / PAGE).read_bytes() == b"v2\n"
    assert (store.root / "wiki/b.md").read_bytes() == b"person's edit\n"
    assert store.held_back() == []
    with caplog.at_level(logging.WARNING):
        result = store.write(
            {"wiki/b.md": b"b2\n", PAGE: b"v2.1\n", "wiki/c.md": b"c1\n"}, {}, "machine touches the edited file"
        )
    assert result.changed
    assert "not refreshed" not in caplog.text
    assert "kept 1 file(s)" in caplog.text
    assert (store.root / "wiki/b.md").read_bytes() == b"person's edit\n"  # the person's edit is kept
    assert (store.root / PAGE).read_bytes() == b"v2.1\n"  # and blocks nothing else
    assert (store.root / "wiki/c.md").read_bytes() == b"c1\n"
    assert store.held_back() == ["wiki/b.md"]
    # only that file differs: the index holds the version the person started from, HEAD the machine's
    assert git(store.root, "status", "--porcelain") == "MM wiki/b.md\n"
    store.write({"wiki/d.md": b"d1\n", "wiki/b.md": b"b3\n"}, {}, "another write")
    assert (store.root / "wiki/d.md").read_bytes() == b"d1\n"
    assert (store.root / "wiki/b.md").read_bytes() == b"person's edit\n"
    assert store.held_back() == ["wiki/b.md"]
    # The person commits their edit with porcelain; the next write brings the tree up to date again.
    git(store.root, "commit", "-q", "-am", "person edit")
    assert store.read("wiki/b.md").content == b"person's edit\n"
    store.write({PAGE: b"v3\n"}, {}, "machine after person")
    assert (store.root / PAGE).read_bytes() == b"v3\n"
    assert git(store.root, "status", "--porcelain") == ""
    assert store.held_back() == []
    assert git(store.root, "rev-list", "--min-parents=2", "--count", "main").strip() == "0"

    # An edit the tip does not touch, then one it does, then the person drops theirs: the file catches up.
    (store.root / PAGE).write_bytes(b"scribble\n")
    store.write({PAGE: b"v4\n"}, {}, "machine over a scribble")
    assert (store.root / PAGE).read_bytes() == b"scribble\n"
    assert store.held_back() == [PAGE]
    git(store.root, "checkout", "--", PAGE)
    store.write({"wiki/e.md": b"e1\n"}, {}, "next write")
    assert (store.root / PAGE).read_bytes() == b"v4\n"
    assert store.held_back() == []
    assert git(store.root, "status", "--porcelain") == ""


def test_gives_up_after_max_rebases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = GitStore(tmp_path / "wiki", max_rebases=0)
    store.init()
    made = _interleave(monkeypatch, store, {"wiki/other.md": b"other\n"})
    with pytest.raises(StoreLocked, match="moved"):
        store.write({PAGE: b"mine\n"}, {}, "mine")
    assert store.head() == made[0]


def test_bare_repository(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "--bare", "-b", "main", "wiki.git")
    store = GitStore(tmp_path / "wiki.git")
    store.init()
    result = store.write({PAGE: b"bare\n"}, {PAGE: ABSENT}, "in a bare repository")
    assert store.read(PAGE).content == b"bare\n"
    assert git(tmp_path / "wiki.git", "rev-parse", "main").strip() == result.commit
    assert not (tmp_path / "wiki.git" / "wiki").exists()


def test_concurrent_init_makes_one_first_commit(tmp_path: Path) -> None:
    root = tmp_path / "wiki"
    code = "import sys, pathlib, store.git_store as g; g.GitStore(pathlib.Path(sys.argv[1])).init()"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(root)], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert git(root, "rev-list", "--count", "main").strip() == "1"
    assert git(root, "fsck", "--strict") == ""
