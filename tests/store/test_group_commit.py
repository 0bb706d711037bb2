"""Group commit: one commit for changes ready together, each checked against its own base."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from store.errors import PageConflict
from store.git.batch import publish_batch
from store.git.group_commit import Change, CommitQueue, Outcome
from store.git_store import ABSENT, GitStore, ReadResult

PAGE, OTHER, THIRD = "wiki/people/ada.md", "wiki/people/bob.md", "wiki/teams/core.md"


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    s = GitStore(tmp_path / "wiki")
    s.init()
    return s


def _change(folder: Path, rid: str, changes: dict[str, bytes], expected: dict[str, str]) -> Change:
    files = {}
    for n, (path, data) in enumerate(changes.items()):
        files[path] = folder / f"{rid}.{n}.blob"
        files[path].write_bytes(data)
    return Change(rid, dict(files), expected, f"change {rid}", [("Lore-Job", rid)])


def test_batch_lands_in_one_commit_and_a_moved_page_gets_its_conflict(store: GitStore, tmp_path: Path) -> None:
    seed = store.write({PAGE: b"v1\n"}, {}, "seed")
    base = store.read(PAGE).version
    head = store.head()
    batch = [
        _change(tmp_path, "a", {PAGE: b"from a\n"}, {PAGE: base}),
        _change(tmp_path, "b", {PAGE: b"from b\n"}, {PAGE: base}),  # built on the same version as a
        _change(tmp_path, "c", {OTHER: b"from c\n"}, {OTHER: ABSENT}),
        _change(tmp_path, "d", {THIRD: b"from d\n"}, {THIRD: "0" * 40}),  # built on a version never there
    ]
    journal: list[str] = []
    outcomes = publish_batch(store._repo, store.ref, batch, lambda c, _: journal.append(c), store._publish, 5)

    assert outcomes["b"].conflict == [PAGE]
    assert outcomes["d"].conflict == [THIRD]
    landed = outcomes["a"].commit
    assert landed is not None
    assert landed == outcomes["c"].commit == journal[0] == store.head()
    assert outcomes["a"].parent == head == seed.commit
    assert outcomes["a"].batch == 2
    assert store.read(PAGE).content == b"from a\n"
    assert store.read(OTHER).content == b"from c\n"
    assert store.read(THIRD).content is None
    assert outcomes["a"].blobs == {PAGE: store.read(PAGE).version}
    info = store.log(limit=1)[0]
    assert info.trailers["Lore-Job"] == ["a", "c"]
    assert info.message.startswith("Group commit of 2 changes")


def test_update_rebuilds_on_the_new_blob_and_returns_blob_ids(store: GitStore) -> None:
    store.write({PAGE: b"person\n"}, {}, "seed")
    seen: list[bytes | None] = []

    def build(current: dict[str, ReadResult]) -> dict[str, bytes | None]:
        seen.append(current[PAGE].content)
        if len(seen) == 1:  # someone else edits the page between our read and our publish
            store.write({PAGE: b"person, edited\n"}, {}, "edit")
        return {PAGE: (current[PAGE].content or b"") + b"machine\n", OTHER: None}

    result = store.update([PAGE, OTHER], build, "append")
    assert seen == [b"person\n", b"person, edited\n"]
    assert result.conflicts == 1
    assert store.read(PAGE).content == b"person, edited\nmachine\n"
    assert result.blobs == {PAGE: store.read(PAGE).version, OTHER: None}
    assert result.commit == store.head()


def test_update_gives_up_after_its_tries(store: GitStore) -> None:
    store.write({PAGE: b"0\n"}, {}, "seed")
    count = [0]

    def build(current: dict[str, ReadResult]) -> dict[str, bytes | None]:
        count[0] += 1
        store.write({PAGE: f"{count[0]}\n".encode()}, {}, "interfere")
        return {PAGE: b"never\n"}

    with pytest.raises(PageConflict):
        store.update([PAGE], build, "loses", tries=3)
    assert count[0] == 3
    assert store.read(PAGE).content == b"3\n"


def test_update_refuses_a_path_build_was_not_given(store: GitStore) -> None:
    from store.errors import InvalidPath

    with pytest.raises(InvalidPath, match="not given"):
        store.update([PAGE], lambda _: {OTHER: b"x"}, "stray")


def test_a_dead_leaders_journal_hands_out_outcomes_once(store: GitStore) -> None:
    """A leader killed after moving the ref: the next leader finds the commit landed and answers."""
    queue = CommitQueue(store._repo.git_dir() / "lore-queue")
    queue.folder.mkdir(parents=True, exist_ok=True)
    base = store.read(PAGE).version
    change = _change(queue.folder, "00000000000000000001-1-dead", {PAGE: b"landed\n"}, {PAGE: base})
    (queue.folder / f"{change.id}.req").write_text(json.dumps({
        "changes": {PAGE: change.changes[PAGE].name}, "expected": change.expected,  # type: ignore[union-attr]
        "message": change.message, "trailers": [list(t) for t in change.trailers]}))
    # What the dead leader did: published the batch and wrote its journal, no outcome files.
    outcomes = publish_batch(store._repo, store.ref, [change], queue._journal, store._publish, 5)
    assert (queue.folder / "journal.json").exists()
    commit = outcomes[change.id].commit

    result = store.write({OTHER: b"next\n"}, {}, "next writer leads")  # recovers, then publishes its own
    assert not (queue.folder / "journal.json").exists()
    assert not (queue.folder / f"{change.id}.req").exists()  # not published a second time
    answered = Outcome.from_json(json.loads((queue.folder / f"{change.id}.out").read_text()))
    assert answered.commit == commit
    assert result.parent == commit
    log = subprocess.run(["git", "log", "--format=%s", "main"], cwd=store.root, capture_output=True, text=True)
    assert log.stdout.splitlines()[:2] == ["next writer leads", f"change {change.id}"]


def test_lone_writer_leads_at_once(store: GitStore) -> None:
    result = store.write({PAGE: b"alone\n"}, {PAGE: ABSENT}, "alone")
    assert result.batch == 1
    assert result.changed
    queue = store._repo.git_dir() / "lore-queue"
    assert sorted(p.name for p in queue.iterdir() if p.is_file()) == ["leader.flock"]


def test_changes_to_one_page_chain_into_one_commit(store: GitStore) -> None:
    """While a leader is busy, two writers append to one page: the second builds on the first's change."""
    import fcntl
    import threading

    store.write({PAGE: b"start\n"}, {}, "seed")
    before = store.head()
    queue = store._repo.git_dir() / "lore-queue"
    results: dict[str, object] = {}

    def writer(line: str) -> None:
        results[line] = store.update([PAGE], lambda cur: {PAGE: (cur[PAGE].content or b"") + line.encode()}, line)

    with open(queue / "leader.flock", "a+b") as busy:
        fcntl.flock(busy, fcntl.LOCK_EX)  # a leader at work: changes queue up behind it
        first = threading.Thread(target=writer, args=("one\n",))
        first.start()
        while not list(queue.glob("*.req")):
            time.sleep(0.01)
        second = threading.Thread(target=writer, args=("two\n",))
        second.start()
        while len(list(queue.glob("*.req"))) < 2:
            time.sleep(0.01)
        fcntl.flock(busy, fcntl.LOCK_UN)
    first.join(10)
    second.join(10)

    assert store.read(PAGE).content == b"start\none\ntwo\n"
    one, two = results["one\n"], results["two\n"]
    assert one.commit == two.commit == store.head()  # type: ignore[attr-defined]
    assert one.conflicts == two.conflicts == 0  # type: ignore[attr-defined]
    assert two.batch == 2  # type: ignore[attr-defined]
    assert two.blobs[PAGE] == store.read(PAGE).version  # type: ignore[attr-defined]
    assert len(store.log(since=before)) == 1


def test_a_waiting_writer_sleeps_until_woken_instead_of_polling(tmp_path: Path) -> None:
    """After a wake-up that was not for it, a waiter blocks again: it looks at the queue a handful of
    times, not thousands (a FIFO whose last writer closed reads as EOF, which made select() spin)."""
    import fcntl
    import threading

    queue = CommitQueue(tmp_path / "queue")
    queue.folder.mkdir()
    looks = 0
    collect = queue._collect

    def counting_collect(rid: str) -> Outcome | None:
        nonlocal looks
        looks += 1
        return collect(rid)

    queue._collect = counting_collect  # type: ignore[method-assign]

    def publish(batch, journal):
        return {c.id: Outcome(commit="c" * 40, parent=None, changed=True, batch=len(batch)) for c in batch}

    result: list[tuple[Outcome, bool]] = []
    with open(queue.folder / "leader.flock", "a+b") as leader:  # another leader is at work
        fcntl.flock(leader, fcntl.LOCK_EX)
        waiter = threading.Thread(target=lambda: result.append(
            queue.submit({PAGE: b"x\n"}, {PAGE: ABSENT}, "m", [], publish, lambda _: False)))
        waiter.start()
        deadline = time.monotonic() + 5
        while not list(queue.folder.glob("*.req")) and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(3):  # three batches end that were not the waiter's
            queue._wake_all()
            time.sleep(0.05)
        time.sleep(0.3)
        looks_while_waiting = looks
        fcntl.flock(leader, fcntl.LOCK_UN)
    queue._wake_all()
    waiter.join(timeout=10)
    assert result
    assert result[0][1] is True  # it led its own batch once the lock was free
    assert result[0][0].commit == "c" * 40
    assert looks_while_waiting <= 8, looks_while_waiting
