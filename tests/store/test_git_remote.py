"""Hosts publishing to one central bare repository over loopback (``git daemon``), with real git."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.git_daemon import git_daemon, make_bare
from store.git_store import ABSENT, GitStore, ReadResult

ROOT = Path(__file__).resolve().parents[2]
PAGE = "wiki/people/ada.md"


def person(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="Person", GIT_AUTHOR_EMAIL="p@example.org",
               GIT_COMMITTER_NAME="Person", GIT_COMMITTER_EMAIL="p@example.org")
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def central(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    bare = make_bare(tmp_path / "served" / "central.git")
    with git_daemon(tmp_path / "served") as url:
        yield bare, url + "/central.git"


def host(tmp_path: Path, name: str, url: str) -> GitStore:
    store = GitStore(tmp_path / name / "wiki", remote_url=url, fetch_interval_s=3600)
    store.init()
    return store


def append(line: bytes):  # noqa: ANN201 - a build function
    def build(current: dict[str, ReadResult]) -> dict[str, bytes | None]:
        return {PAGE: (current[PAGE].content or b"") + line}

    return build


def test_hosts_share_one_history_and_converge(tmp_path: Path, central: tuple[Path, str]) -> None:
    bare, url = central
    a, b = host(tmp_path, "a", url), host(tmp_path, "b", url)
    assert a.head() == b.head() == person(bare, "rev-parse", "main").strip()  # one first commit
    a.update([PAGE], append(b"from a\n"), "a writes")
    # b has not fetched: it builds on a stale page, its push is refused, it fetches and builds again.
    result = b.update([PAGE], append(b"from b\n"), "b writes")
    assert result.conflicts == 1
    assert b.read(PAGE).content == b"from a\nfrom b\n"
    b.update(["wiki/other.md"], lambda _: {"wiki/other.md": b"b\n"}, "other path")
    a.sync()
    central_head = person(bare, "rev-parse", "main").strip()
    assert a.head() == b.head() == central_head
    assert (tmp_path / "a" / "wiki" / PAGE).read_bytes() == b"from a\nfrom b\n"  # working tree follows
    assert person(bare, "rev-list", "--min-parents=2", "--count", "main").strip() == "0"
    assert person(bare, "fsck", "--strict") == ""


def test_a_persons_push_is_kept_and_rerendered_on_top(tmp_path: Path, central: tuple[Path, str]) -> None:
    _, url = central
    lore = host(tmp_path, "lore", url)
    lore.update([PAGE], append(b"machine 1\n"), "machine 1")
    clone = tmp_path / "person"
    person(tmp_path, "clone", "-q", url, str(clone))
    with open(clone / PAGE, "ab") as fh:
        fh.write(b"a person's note\n")
    person(clone, "commit", "-qam", "note")
    person(clone, "push", "-q", "origin", "main")
    pushed = person(clone, "rev-parse", "HEAD").strip()

    result = lore.update([PAGE], append(b"machine 2\n"), "machine 2")
    assert result.conflicts == 1  # the push moved the page: built again on the person's blob
    assert lore.read(PAGE).content == b"machine 1\na person's note\nmachine 2\n"
    person(clone, "pull", "-q", "--ff-only")
    assert person(clone, "merge-base", "--is-ancestor", pushed, "HEAD") == ""
    assert (clone / PAGE).read_bytes() == b"machine 1\na person's note\nmachine 2\n"


KILLED = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from store.faults import arm
    from store.git_store import GitStore

    store = GitStore(Path(sys.argv[1]), remote_url=sys.argv[2])
    store.init()
    arm("after_ref", Path(sys.argv[3]))
    store.update(["wiki/people/ada.md"], lambda _: {"wiki/people/ada.md": b"rendered\\n"}, "render")
    print("not killed")
    """
)


def test_sigkill_between_push_and_ledger_converges(tmp_path: Path, central: tuple[Path, str]) -> None:
    bare, url = central
    root = tmp_path / "h" / "wiki"
    proc = subprocess.run([sys.executable, "-c", KILLED, str(root), url, str(tmp_path / "faults")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert (tmp_path / "faults" / "after_ref.fired").exists()
    pushed = person(bare, "rev-parse", "main").strip()
    assert person(bare, "show", f"{pushed}:{PAGE}") == "rendered\n"  # the push landed before the kill

    # The job runs again on the restarted host, as the ledger never recorded the render.
    store = GitStore(root, remote_url=url)
    store.init()
    result = store.update([PAGE], lambda _: {PAGE: b"rendered\n"}, "render")
    assert not result.changed  # the page already is what the job renders: no second commit
    assert result.blobs[PAGE] == store.read(PAGE).version != ABSENT
    assert store.head() == person(bare, "rev-parse", "main").strip() == pushed
    queue = store._repo.git_dir() / "lore-queue"
    assert not list(queue.glob("*.req"))
    assert not (queue / "journal.json").exists()
    assert person(bare, "fsck", "--strict") == ""
