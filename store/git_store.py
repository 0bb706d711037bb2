"""The git page store: pages are blobs at HEAD of one branch, published by compare-and-swap.

A write never touches the shared index or the working tree. It hashes the new blobs
(``hash-object -w``), reads HEAD's trees above the changed paths (one ``cat-file --batch-command``),
writes the changed trees bottom-up (one ``mktree --batch``), makes a commit with
``commit-tree -p <head>``, and publishes it with
``update-ref refs/heads/<branch> <new> <old>``, a compare-and-swap under git's own ref lock (DESIGN
section 2). If HEAD moved in between, the write is rebuilt on the new HEAD, unless a page the caller
named in ``expected`` now has another version: that is a :class:`~store.errors.PageConflict` and the
caller re-renders from the ledger. Paths not in ``expected`` are written blind (last writer wins).

After a publish the working tree is brought to HEAD for people who open the folder (best effort,
serialised by an ``flock``, never clobbering a person's uncommitted edits). Every call starts its own
short-lived ``git`` processes; nothing is kept open between calls.
"""

from __future__ import annotations

import builtins
import logging
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from store.errors import InvalidPath, PageConflict, StoreError, StoreLocked
from store.faults import crash_point
from store.git_plumbing import (
    ABSENT,
    CommitInfo,
    ancestors,
    apply_changes,
    check_path,
    check_rev,
    check_version,
    compose_message,
    effective_changes,
    parse_tree,
    unchanged,
)
from store.git_repo import GitRepo

__all__ = ["ABSENT", "CommitInfo", "GitStore", "ReadResult", "WriteResult"]

log = logging.getLogger(__name__)

STALE_LOCK_MARGIN_S = 30.0
"""Seconds added to the ref lock timeout before a lock file may be judged stale."""
GC_EVERY_WRITES = 500
"""A store instance runs ``git gc --auto`` after this many of its own commits."""


@dataclass(frozen=True)
class ReadResult:
    """A page as read at one commit: its bytes (None if absent) and its version (blob id or ABSENT)."""

    content: bytes | None
    version: str


@dataclass(frozen=True)
class WriteResult:
    """Outcome of :meth:`GitStore.write`.

    Attributes:
        commit: The new commit, or HEAD itself when nothing changed.
        parent: The HEAD the write was built on (None for the first commit).
        rebases: How often the write was rebuilt on a HEAD that moved under it.
        changed: False when the resulting tree equalled HEAD's and no commit was made.
    """

    commit: str
    parent: str | None
    rebases: int
    changed: bool


class GitStore:
    """Pages in a git repository at ``root`` (a normal repository with a working tree, or a bare one).

    Args:
        root: Repository folder (created by :meth:`init`).
        branch: Branch the wiki lives on.
        author_name: Author and committer name of every commit.
        author_email: Author and committer e-mail of every commit.
        lock_timeout_ms: How long git waits for a ref lock another writer holds.
        max_rebases: How often one write is rebuilt on a moved HEAD before it raises StoreLocked.
        refresh_worktree: Bring the working tree to HEAD after each publish.
    """

    def __init__(
        self,
        root: Path,
        *,
        branch: str = "main",
        author_name: str = "Lore",
        author_email: str = "lore@localhost",
        lock_timeout_ms: int = 5000,
        max_rebases: int = 50,
        refresh_worktree: bool = True,
    ) -> None:
        self.root = Path(root).absolute()
        self.branch = branch
        self.ref = f"refs/heads/{check_rev(branch)}"
        self.author_name = author_name
        self.author_email = author_email
        self.lock_timeout_ms = lock_timeout_ms
        self.max_rebases = max_rebases
        self.refresh_worktree = refresh_worktree
        self._repo = GitRepo(self.root, author_name, author_email)
        self._published = 0

    # --- setup ----------------------------------------------------------------------------------

    def init(self) -> None:
        """Create the repository if needed, (re)apply its settings, and make a first commit if unborn.

        Idempotent and safe to run from several processes at once.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        for attempt in range(20):  # another process may be half-way through its own `git init`
            if self._repo.locate() is None:
                self._repo.run("init", "-q", f"--initial-branch={self.branch}", str(self.root), discover=True,
                               check=False)
            if self._repo.locate() and self._repo.run("rev-parse", "--git-dir", check=False).returncode == 0:
                break
            time.sleep(0.02 * (attempt + 1))
        else:
            raise StoreError(f"could not create a git repository at {self.root}")
        self._configure(
            {
                "core.filesRefLockTimeout": str(self.lock_timeout_ms),
                "core.packedRefsTimeout": str(self.lock_timeout_ms),
                "core.logAllRefUpdates": "true",
                "core.autocrlf": "false",
            }
        )
        if self.head() is None:
            self.write({}, {}, "Initialize the Lore wiki")
        self._repo.run("gc", "--auto", "--quiet", check=False)

    def _configure(self, wanted: dict[str, str]) -> None:
        """Set repository config keys that differ; several processes may start up at once."""
        listing = self._repo.run("config", "--local", "--null", "--list", check=False).stdout.decode()
        current = dict(item.partition("\n")[::2] for item in listing.split("\0") if item)
        if "core.fsync" not in current and "core.fsyncobjectfiles" not in current:
            version = self._repo.out("version", discover=True).split()[2]
            if tuple(int(x) for x in version.split(".")[:2]) >= (2, 36):
                wanted["core.fsync"] = "objects,reference"
            else:
                wanted["core.fsyncObjectFiles"] = "true"
        for key, value in wanted.items():
            for attempt in range(10):
                if current.get(key.lower()) == value:
                    break
                if self._repo.run("config", key, value, check=False).returncode == 0:
                    break
                time.sleep(0.05 * (attempt + 1))  # another process holds config.lock
                got = self._repo.run("config", "--get", key, check=False).stdout.decode().strip()
                current[key.lower()] = got
            else:
                raise StoreLocked(f"could not set {key} in the repository config")

    def head(self) -> str | None:
        """The commit at the tip of the branch, or None before the first commit."""
        proc = self._repo.run("rev-parse", "--verify", "-q", f"{self.ref}^{{commit}}", check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.decode().strip() or None

    # --- reads ----------------------------------------------------------------------------------

    def read(self, path: str, at: str | None = None) -> ReadResult:
        """Read one page at HEAD (or at commit ``at``).

        Raises:
            InvalidPath: The path is not a safe repository path.
            StoreError: ``at`` names no commit.
        """
        return self.read_many([path], at)[path]

    def read_many(self, paths: Iterable[str], at: str | None = None) -> dict[str, ReadResult]:
        """Read several pages from one commit with a single ``git cat-file`` process.

        Returns:
            path -> ReadResult; absent paths (and directories) read as ``ReadResult(None, ABSENT)``.
        """
        wanted = list(dict.fromkeys(check_path(p) for p in paths))
        rev = check_rev(at) if at else self.ref
        commit, answers = self._repo.probe(rev, [("contents", ":" + p) for p in wanted])
        if commit is None and at is not None:
            raise StoreError(f"unknown revision {at!r}")
        result = {p: ReadResult(None, ABSENT) for p in wanted}
        for path, (oid, kind, data) in zip(wanted, answers, strict=False):
            if oid is not None and kind == "blob":
                result[path] = ReadResult(data, oid)
        return result

    def list(self, prefix: str = "", at: str | None = None) -> builtins.list[str]:
        """Paths of all files whose path starts with ``prefix`` at HEAD (or ``at``), sorted."""
        if prefix:
            check_path(prefix.rstrip("/") or "/")
        rev = check_rev(at) if at else self.ref
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        args = ["ls-tree", "-r", "-z", "--name-only", "--full-tree", f"{rev}^{{tree}}"]
        proc = self._repo.run(*args, *(["--", folder] if folder else []), check=False)
        if proc.returncode != 0:
            if at is None and self.head() is None:
                return []
            raise StoreError(f"cannot list {rev}: {proc.stderr.decode().strip()}")
        names = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
        return sorted(n for n in names if n and n.startswith(prefix))

    def history(self, path: str, limit: int = 50) -> builtins.list[CommitInfo]:
        """Commits that changed ``path``, newest first; ``paths`` lists everything each one changed."""
        check_path(path)
        if self.head() is None:
            return []
        return self._repo.log("-n", str(int(limit)), "--full-diff", self.ref, "--", path)

    def diff(self, path: str, a: str, b: str) -> str:
        """Unified diff of ``path`` between commits ``a`` and ``b`` (empty when equal)."""
        check_path(path)
        args = ["diff", "--no-color", "--no-ext-diff", "--no-textconv", "--end-of-options"]
        proc = self._repo.run(*args, check_rev(a), check_rev(b), "--", path)
        return proc.stdout.decode("utf-8", "replace")

    def log(self, since: str | None = None, limit: int | None = None) -> builtins.list[CommitInfo]:
        """Commits on the branch, newest first; only those after commit ``since`` (exclusive) if given."""
        if self.head() is None:
            return []
        args = ["-n", str(int(limit))] if limit is not None else []
        rev = f"{check_rev(since)}..{self.ref}" if since else self.ref
        return self._repo.log(*args, rev)

    def changed_paths(self, a: str | None, b: str) -> builtins.list[str]:
        """Paths that differ between commits ``a`` and ``b``; every path of ``b`` when ``a`` is None."""
        if a is None:
            return self.list("", check_rev(b))
        args = ["diff-tree", "-r", "-z", "--name-only", "--no-renames", "--end-of-options"]
        proc = self._repo.run(*args, check_rev(a), check_rev(b))
        return sorted(n for n in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if n)

    # --- the write path -------------------------------------------------------------------------

    def write(
        self,
        changes: Mapping[str, bytes | None],
        expected: Mapping[str, str],
        message: str,
        trailers: Sequence[tuple[str, str]] = (),
    ) -> WriteResult:
        """Commit ``changes`` on top of HEAD in one commit, if the ``expected`` versions still hold.

        Args:
            changes: path -> new bytes, or None to delete the path.
            expected: path -> version the caller read (blob id or ABSENT). Usually a subset of
                ``changes``; a path only listed here guards the write without being written.
            message: Commit message.
            trailers: ``(key, value)`` trailers such as ``("Lore-Source", sha256)``.

        Returns:
            The commit made (or HEAD, with ``changed=False``, when the tree would not change).

        Raises:
            InvalidPath: A path is unsafe, or a written path is a directory or lies below a file.
            PageConflict: A path in ``expected`` has another version at HEAD; ``paths`` names them.
            StoreLocked: The ref lock stayed taken, or HEAD moved more than ``max_rebases`` times.
            StoreError: git failed otherwise.
        """
        for path in changes:
            check_path(path)
        for path, version in expected.items():
            check_version(check_path(path), version)
        written = sorted(p for p, data in changes.items() if data is not None)
        for path in written:
            if any(changes.get(a) is not None for a in ancestors(path)):
                raise InvalidPath(f"{path} lies below a path this write also makes a file")
        text = compose_message(message, trailers)
        blobs: dict[str, str] | None = None  # hashed once the first snapshot shows no conflict
        dirs = sorted({a for p in changes for a in ancestors(p)})
        looked_up = sorted(set(expected) | set(changes))
        queries = [("contents", "^{tree}")] + [("contents", ":" + d) for d in dirs]
        queries += [("info", ":" + p) for p in looked_up]
        rebases = 0
        while True:
            head, answers = self._repo.probe(self.ref, queries)
            trees, infos = answers[: len(dirs) + 1], answers[len(dirs) + 1 :]
            kinds = dict(zip(["", *dirs], (kind for _, kind, _ in trees), strict=True))
            versions = {p: (oid if kind == "blob" else kind) or ABSENT for p, (oid, kind, _) in
                        zip(looked_up, infos, strict=True)}
            moved = [p for p, version in expected.items() if versions[p] != version]
            if moved:
                raise PageConflict(moved)
            if blobs is None:
                blobs = self._hash_blobs({p: data for p, data in changes.items() if data is not None})
            effective = effective_changes(changes, blobs, kinds, versions)
            oid_len = len(head) // 2 if head else 20
            needed = {"", *(a for p in effective for a in ancestors(p))}
            listings = {d: parse_tree(data, oid_len) if kind == "tree" and data is not None else {}
                        for d, (_, kind, data) in zip(["", *dirs], trees, strict=True) if d in needed}
            if head is not None and all(unchanged(listings, p, blob) for p, blob in effective.items()):
                return WriteResult(head, head, rebases, False)
            with self._repo.tree_maker() as make_tree:
                tree = apply_changes(listings, effective, make_tree)
            if head is not None and tree == trees[0][0]:
                return WriteResult(head, head, rebases, False)
            parent = ["-p", head] if head else []
            commit = self._repo.out("commit-tree", "--no-gpg-sign", tree, *parent, input=text)
            crash_point("before_ref")  # crash tests: objects written, branch not moved
            if self._publish(commit, head):
                crash_point("after_ref")  # crash tests: branch moved, nothing after it done
                self._after_publish()
                return WriteResult(commit, head, rebases, True)
            rebases += 1
            if rebases > self.max_rebases:
                raise StoreLocked(f"HEAD moved {rebases} times during one write; giving up")

    def _hash_blobs(self, contents: Mapping[str, bytes]) -> dict[str, str]:
        """Write blobs for ``contents`` with one ``hash-object`` process; path -> blob id."""
        if not contents:
            return {}
        if len(contents) == 1:
            (path, data), = contents.items()
            return {path: self._repo.out("hash-object", "-w", "--no-filters", "--stdin", input=data)}
        with tempfile.TemporaryDirectory(prefix="lore-blobs-") as tmp:
            files = []
            for i, data in enumerate(contents.values()):
                files.append(Path(tmp) / str(i))
                files[-1].write_bytes(data)
            listing = "".join(f"{f}\n" for f in files).encode()
            proc = self._repo.run("hash-object", "-w", "--no-filters", "--stdin-paths", input=listing)
        return dict(zip(contents, proc.stdout.decode().split(), strict=True))

    def _publish(self, new: str, old: str | None) -> bool:
        """Move the branch from ``old`` to ``new``; False when HEAD had moved (rebuild and retry)."""
        for attempt in range(2):
            proc = self._repo.run("update-ref", "-m", "lore: write", self.ref, new, old or "", check=False)
            if proc.returncode == 0:
                return True
            err = proc.stderr.decode().strip()
            if "but expected" in err or "already exists" in err or self.head() != old:
                return False  # HEAD moved: rebuild on it
            if "Unable to create" not in err and "File exists" not in err:
                raise StoreError(f"update-ref failed: {err}")
            if attempt == 0 and self.recover_stale_locks():
                continue
            raise StoreLocked(f"ref {self.ref} stayed locked for {self.lock_timeout_ms} ms: {err}")
        return False  # pragma: no cover - the loop always returns or raises

    # --- working tree and locks -----------------------------------------------------------------

    def _after_publish(self) -> None:
        """Refresh the working tree, and now and then let git pack loose objects; never raises.

        Plumbing never starts git's auto-gc, so the store runs ``gc --auto`` (a no-op below git's
        thresholds, detached above them) at :meth:`init` and every ``GC_EVERY_WRITES`` commits.
        A refresh that fails is tried once more after :meth:`recover_stale_locks` removed something:
        an ``index.lock`` left by a killed ``git`` would otherwise stop every refresh for good.
        """
        self._published += 1
        if self._published % GC_EVERY_WRITES == 0:
            self._repo.run("gc", "--auto", "--quiet", check=False)
        if not self.refresh_worktree:
            return
        for attempt in range(2):
            try:
                self._repo.refresh_worktree(self.ref)
                return
            except (StoreError, OSError, subprocess.SubprocessError) as exc:
                if attempt == 0 and self.recover_stale_locks():
                    continue
                log.warning("working tree of %s not refreshed: %s", self.root, exc)
                return

    def held_back(self) -> builtins.list[str]:
        """Files the working-tree refresh keeps as a person left them (uncommitted edits the tip changes)."""
        return self._repo.held_back()

    def recover_stale_locks(self) -> builtins.list[Path]:
        """Remove lock files left behind by git processes that were killed.

        The rule: a lock file is stale when it is older than the ref lock timeout plus
        ``STALE_LOCK_MARGIN_S`` (30 s) and no live process has it open. git holds a ref lock
        (``refs/**.lock``, ``HEAD.lock``, ``packed-refs.lock``) for one transaction, milliseconds,
        and a waiting writer gives up after the lock timeout, so an older one that nobody has open
        was orphaned by a killed process. ``index.lock`` may be held for minutes by a person's
        ``git commit`` waiting in an editor, so it is removed only when, in addition, no ``git``
        process works in this repository. The open-file and process checks read Linux ``/proc``;
        elsewhere the age alone decides. Safe to call at start-up and whenever a lock blocks a write.

        Returns:
            The lock files removed.
        """
        return self._repo.remove_stale_locks(self.lock_timeout_ms / 1000 + STALE_LOCK_MARGIN_S)
