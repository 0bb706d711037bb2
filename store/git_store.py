"""The git page store: pages are blobs at HEAD of one branch, published by compare-and-swap.

:meth:`GitStore.update` is the one publish API: ``build`` turns the current blobs of some paths into
changes, the change is published, and a page that moved meanwhile runs ``build`` again on the new
blobs. A write never touches the shared index or the working tree. Changes ready at the same moment
go out together (:mod:`store.git.group_commit`): one leader hashes the new blobs
(``hash-object -w``), reads HEAD's trees above the changed paths (one ``cat-file --batch-command``),
writes the changed trees bottom-up (one ``mktree --batch``), makes one commit with
``commit-tree -p <head>``, and publishes it with ``update-ref refs/heads/<branch> <new> <old>``, a
compare-and-swap under git's own ref lock (DESIGN section 2). If HEAD moved in between, the batch is
rebuilt on the new HEAD; a change whose expected page now has another version gets a
:class:`~store.errors.PageConflict` back and the rest land. Paths a change does not guard are written
blind (last writer wins).

With ``remote_url`` the repository of record is a central one (:mod:`store.git.remote`): the local
branch mirrors the remote's as last fetched, a publish is a push with the expected old value, and a
rejected push fetches and rebuilds exactly like a local lost race.

After a publish the working tree is brought to HEAD for people who open the folder (best effort,
serialised by an ``flock``, never clobbering a person's uncommitted edits). Every call starts its own
short-lived ``git`` processes; nothing is kept open between calls.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from store.errors import InvalidPath, PageConflict, StoreError, StoreLocked
from store.git.batch import publish_batch
from store.git.group_commit import Change, CommitQueue, Outcome
from store.git.objects import Unsupported, read_paths
from store.git.remote import Remote
from store.git_plumbing import (
    ABSENT,
    CommitInfo,
    ancestors,
    check_path,
    check_rev,
    check_version,
    compose_message,
)
from store.git_repo import GitRepo

__all__ = ["ABSENT", "MAX_CAS_TRIES", "Build", "CommitInfo", "GitStore", "ReadResult", "UpdateResult",
           "WriteResult"]

log = logging.getLogger(__name__)

STALE_LOCK_MARGIN_S = 30.0
"""Seconds added to the ref lock timeout before a lock file may be judged stale."""
GC_EVERY_WRITES = 500
"""A store instance runs ``git gc --auto`` after this many of its own commits."""
MAX_CAS_TRIES = 8
"""How many snapshots :meth:`GitStore.update` lets ``build`` see before it raises PageConflict."""


@dataclass(frozen=True)
class ReadResult:
    """A page as read at one commit: its bytes (None if absent) and its version (blob id or ABSENT)."""

    content: bytes | None
    version: str


Build = Callable[[Mapping[str, ReadResult]], "Mapping[str, bytes | None] | None"]
"""What :meth:`GitStore.update` calls: the current pages -> the changes to publish (None: nothing)."""
Journal = Callable[[str, Mapping[str, Outcome]], None]


@dataclass(frozen=True)
class WriteResult:
    """Outcome of :meth:`GitStore.write`.

    Attributes:
        commit: The new commit, or HEAD itself when nothing changed.
        parent: The HEAD the write was built on (None for the first commit).
        rebases: How often the write was rebuilt on a HEAD that moved under it.
        changed: False when the resulting tree equalled HEAD's and no commit was made.
        blobs: path -> blob id written (None: the path is absent now), for every changed path.
        batch: How many changes shared the commit (group commit); 0 when none was made.
    """

    commit: str
    parent: str | None
    rebases: int
    changed: bool
    blobs: dict[str, str | None] = field(default_factory=dict)
    batch: int = 1


@dataclass(frozen=True)
class UpdateResult:
    """Outcome of :meth:`GitStore.update`.

    Attributes:
        commit: The commit holding the pages (HEAD when nothing changed; None before the first commit).
        blobs: path -> blob id of every path afterwards (None: absent).
        changed: Whether a commit was made.
        conflicts: How often ``build`` was run again because a page moved.
        rebases: How often the commit was rebuilt because HEAD moved on other paths.
        batch: How many changes shared the commit (0 when nothing changed).
    """

    commit: str | None
    blobs: dict[str, str | None]
    changed: bool
    conflicts: int
    rebases: int
    batch: int


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
        remote_url: URL of the central repository of record; None: this repository is it.
        fetch_interval_s: With a remote, an update first fetches when the last fetch is older.
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
        remote_url: str | None = None,
        fetch_interval_s: float = 5.0,
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
        self.remote = Remote(remote_url, self._repo, branch) if remote_url else None
        self.fetch_interval_s = fetch_interval_s
        self._fetched_at = -float("inf")
        self._queue_obj: CommitQueue | None = None
        self._sha1 = False  # known once the queue is opened: chained changes compute SHA-1 blob ids

    @property
    def _queue(self) -> CommitQueue:
        if self._queue_obj is None:
            git_dir = self._repo.git_dir()
            self._queue_obj = CommitQueue(git_dir / "lore-queue")
            config = git_dir / "config"
            self._sha1 = "objectformat = sha256" not in (config.read_text().lower() if config.exists() else "")
        return self._queue_obj

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
        if self.remote is not None:
            self.remote.configure()
            self.sync()
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

    def update(
        self,
        paths: Iterable[str],
        build: Build,
        message: str | Callable[[Mapping[str, bytes | None]], str],
        trailers: Sequence[tuple[str, str]] = (),
        *,
        tries: int = MAX_CAS_TRIES,
    ) -> UpdateResult:
        """Publish what ``build`` makes of the current ``paths``: the one publish API of every flow.

        ``build`` receives path -> :class:`ReadResult` for every path (one snapshot of HEAD) and
        returns the changes (path -> new bytes, or None to delete; only paths it was given), or
        None / an empty mapping for nothing to do. Each changed path is guarded by the version
        ``build`` saw; the change goes to the group commit (:mod:`store.git.group_commit`). When one
        of those pages moved meanwhile, ``build`` runs again on the new blobs, at most ``tries``
        times in all; a branch that moved on other paths costs no rebuild.

        Args:
            paths: Repository paths ``build`` reads.
            build: Current pages -> changes (pure of side effects; it may run several times).
            message: Commit message, or a function of the changes returning it.
            trailers: ``(key, value)`` trailers such as ``("Lore-Source", sha256)``.
            tries: How many snapshots ``build`` may see before the update gives up.

        Returns:
            The commit, and the blob id of every path afterwards (None: absent).

        Raises:
            InvalidPath: A path is unsafe, or ``build`` returned a path it was not given.
            PageConflict: The pages kept changing under ``build`` for ``tries`` snapshots.
            StoreLocked: The ref stayed locked, or HEAD moved more than ``max_rebases`` times.
            StoreError: git failed otherwise.
        """
        wanted = list(dict.fromkeys(check_path(p) for p in paths))
        conflicts = 0
        for _ in range(max(1, tries)):
            with contextlib.ExitStack() as locks:
                locks.enter_context(self._queue.page_locks(wanted))
                marker = locks.enter_context(self._queue.building())
                result, led = self._update_once(wanted, build, message, trailers, marker, locks.close)
            if led:
                self._after_publish()  # outside the page locks: the page's next writer need not wait
            if result is not None:
                return replace(result, conflicts=conflicts)
            conflicts += 1
        raise PageConflict(wanted)

    def _update_once(
        self,
        wanted: builtins.list[str],
        build: Build,
        message: str | Callable[[Mapping[str, bytes | None]], str],
        trailers: Sequence[tuple[str, str]],
        marker: Path,
        unlock: Callable[[], None],
    ) -> tuple[UpdateResult | None, bool]:
        """One snapshot, one build, one publish: (result or None when a page moved, led a batch).

        The page locks are released (``unlock``) as soon as the change is queued; pages other writers
        of this host have queued and not yet published are read as they will be (chained changes).
        """
        self._maybe_fetch()
        current = self._snapshot(wanted)
        if self._sha1:
            for path, (version, data) in self._queue.pending(wanted).items():
                current[path] = ReadResult(data, version)
        changes = dict(build(current) or {})
        strays = sorted(set(changes) - set(current))
        if strays:
            raise InvalidPath(f"build returned paths it was not given: {', '.join(strays)}")
        blobs = {p: (None if r.version == ABSENT else r.version) for p, r in current.items()}
        if not changes:
            return UpdateResult(self.head(), blobs, False, 0, 0, 0), False
        text = message(changes) if callable(message) else message
        try:
            result, led = self._submit(changes, {p: current[p].version for p in changes}, text, trailers, marker,
                                       unlock if self._sha1 else None)
        except PageConflict:
            return None, True
        blobs.update(result.blobs)
        return UpdateResult(result.commit, blobs, result.changed, 0, result.rebases, result.batch), led

    def _snapshot(self, paths: builtins.list[str]) -> dict[str, ReadResult]:
        """The pages at HEAD for a build: read in-process when the layout allows, else with git."""
        try:
            _, found = read_paths(self._repo.git_dir(), self.ref, paths)
        except Unsupported:
            return self.read_many(paths)
        return {p: ReadResult(data, version) for p, (version, data) in found.items()}

    def write(
        self,
        changes: Mapping[str, bytes | None],
        expected: Mapping[str, str],
        message: str,
        trailers: Sequence[tuple[str, str]] = (),
    ) -> WriteResult:
        """Commit ``changes`` on top of HEAD, if the ``expected`` versions still hold (no rebuild).

        The change is queued for the group commit: it may share its commit with other changes ready
        at the same moment, each checked against its own expected versions. Flows call
        :meth:`update`, which rebuilds on a conflict; this is its single-shot step.

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
        result, led = self._submit(changes, expected, message, trailers)
        if led:
            self._after_publish()
        return result

    def _submit(
        self,
        changes: Mapping[str, bytes | None],
        expected: Mapping[str, str],
        message: str,
        trailers: Sequence[tuple[str, str]],
        building: Path | None = None,
        queued: Callable[[], None] | None = None,
    ) -> tuple[WriteResult, bool]:
        """Queue a checked change for the group commit: (its result, whether this caller led a batch)."""
        compose_message(message, trailers)  # refuse a bad message before it is queued
        outcome, led = self._queue.submit(changes, expected, message, trailers, self._publish_batch, self._landed,
                                          building, queued)
        try:
            outcome.raise_for_error()
        except StoreError:
            if led:
                self._after_publish()
            raise
        assert outcome.commit is not None
        result = WriteResult(outcome.commit, outcome.parent, outcome.rebases, outcome.changed,
                             dict(outcome.blobs), outcome.batch)
        return result, led

    def _publish_batch(self, batch: Sequence[Change], journal: Journal) -> dict[str, Outcome]:
        return publish_batch(self._repo, self.ref, batch, journal, self._publish, self.max_rebases)

    def _landed(self, commit: str) -> bool:
        """Whether a journalled commit of a dead leader is on the branch."""
        if self.remote is not None:
            self.sync()
        head = self.head()
        if head is None:
            return False
        return self._repo.run("merge-base", "--is-ancestor", check_rev(commit), head, check=False).returncode == 0

    def _publish(self, new: str, old: str | None) -> bool:
        """Move the branch from ``old`` to ``new``; False when HEAD had moved (rebuild and retry).

        With a remote, the push is the compare-and-swap; a rejected push fetches first, so the
        rebuild sees the remote's head.
        """
        if self.remote is not None:
            if not self.remote.push(new, old):
                self.sync(refresh=False)
                return False
            self._repo.run("update-ref", "-m", "lore: pushed", self.ref, new, old or "", check=False)
            return True
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

    # --- the central remote ---------------------------------------------------------------------

    def sync(self, *, refresh: bool = True) -> str | None:
        """Fetch the remote's branch and move the local branch to it (no-op without a remote).

        The local branch mirrors the remote: it only ever holds commits the remote took. The move
        is a compare-and-swap against the head read before the fetch, so a publish that lands
        meanwhile is never undone.

        Args:
            refresh: Bring the working tree along afterwards.

        Returns:
            The local head afterwards.

        Raises:
            RemoteUnavailable: The remote could not be reached.
        """
        if self.remote is None:
            return self.head()
        before = self.head()
        remote_head = self.remote.fetch()
        self._fetched_at = time.monotonic()
        if remote_head is not None and remote_head != before:
            self._repo.run("update-ref", "-m", "lore: fetched", self.ref, remote_head, before or "", check=False)
            if refresh:
                self._after_publish(count=False)
        return self.head()

    def _maybe_fetch(self) -> None:
        if self.remote is not None and time.monotonic() - self._fetched_at >= self.fetch_interval_s:
            self.sync()

    # --- working tree and locks -----------------------------------------------------------------

    def _after_publish(self, *, count: bool = True) -> None:
        """Refresh the working tree, and now and then let git pack loose objects; never raises.

        Plumbing never starts git's auto-gc, so the store runs ``gc --auto`` (a no-op below git's
        thresholds, detached above them) at :meth:`init` and every ``GC_EVERY_WRITES`` commits.
        A refresh that fails is tried once more after :meth:`recover_stale_locks` removed something:
        an ``index.lock`` left by a killed ``git`` would otherwise stop every refresh for good.
        """
        self._published += int(count)
        if count and self._published % GC_EVERY_WRITES == 0:
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
