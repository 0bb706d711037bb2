"""One git repository on disk, driven through short-lived ``git`` processes.

:class:`GitRepo` finds the repository's git directory (so a wiki folder inside another checkout never
falls through to the outer repository), runs ``git`` with a fixed identity and environment, reads
objects in one ``cat-file --batch-command`` process, keeps the working tree in step with the branch,
and clears lock files that killed processes left behind. :mod:`store.git_store` builds the page store
on top of it. Nothing here stays running between calls.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from store.errors import StoreError
from store.git_plumbing import (
    LOG_FORMAT,
    CommitInfo,
    Listing,
    encode_name,
    mktree_input,
    parse_batch,
    parse_log,
)

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 300
REFRESH_SCAN = 1000
HELD_FILE = "lore-worktree-held"
"""Commits searched for the one the shared index is checked out at."""

Answer = tuple[str | None, str | None, bytes | None]


class GitRepo:
    """Runs git against the repository at ``root`` (working tree or bare).

    Args:
        root: Repository folder.
        author_name: Author and committer name for every command.
        author_email: Author and committer e-mail for every command.
    """

    def __init__(self, root: Path, author_name: str, author_email: str) -> None:
        self.root = root
        self.author_name = author_name
        self.author_email = author_email
        self._location: tuple[Path, bool] | None = None

    def locate(self) -> tuple[Path, bool] | None:
        """(git directory, is bare) of the repository at ``root``, or None if there is none yet."""
        if self._location is None:
            dot = self.root / ".git"
            if dot.is_dir():
                self._location = (dot, False)
            elif dot.is_file() and dot.read_text().startswith("gitdir:"):
                self._location = ((self.root / dot.read_text()[7:].strip()).absolute(), False)
            elif (self.root / "HEAD").is_file() and (self.root / "objects").is_dir():
                self._location = (self.root, True)
        return self._location

    def git_dir(self) -> Path:
        """The git directory.

        Raises:
            StoreError: There is no repository at ``root`` yet.
        """
        location = self.locate()
        if location is None:
            raise StoreError(f"no git repository at {self.root}; call init() first")
        return location[0]

    def env(self, extra: Mapping[str, str] | None = None, *, discover: bool = False) -> dict[str, str]:
        """Environment for a git child: inherited minus ``GIT_*``, plus identity and ``GIT_DIR``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            LC_ALL="C",
            GIT_TERMINAL_PROMPT="0",
            GIT_LITERAL_PATHSPECS="1",
            GIT_AUTHOR_NAME=self.author_name,
            GIT_AUTHOR_EMAIL=self.author_email,
            GIT_COMMITTER_NAME=self.author_name,
            GIT_COMMITTER_EMAIL=self.author_email,
        )
        if not discover:
            env["GIT_DIR"] = str(self.git_dir())
        env.update(extra or {})
        return env

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        discover: bool = False,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``git <args>`` in ``root``.

        Args:
            args: The git command line after ``git``.
            input: Bytes for the child's stdin.
            env: Extra environment (``GIT_INDEX_FILE``, ``GIT_WORK_TREE``).
            check: Raise on a non-zero exit.
            discover: Do not pin ``GIT_DIR`` (only for ``git init`` and ``git version``).

        Raises:
            StoreError: The command failed (with ``check``) or timed out.
        """
        try:
            proc = subprocess.run(
                ["git", *args],
                input=input,
                capture_output=True,
                cwd=self.root,
                env=self.env(env, discover=discover),
                timeout=COMMAND_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise StoreError(f"git {args[0]} timed out") from exc
        if check and proc.returncode != 0:
            raise StoreError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc

    def out(self, *args: str, **kwargs: object) -> str:
        """``run`` and return stdout as stripped text."""
        return self.run(*args, **kwargs).stdout.decode().strip()  # type: ignore[arg-type]

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["git", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            cwd=self.root,
            env=self.env(),
        )

    def probe(self, rev: str, queries: Sequence[tuple[str, str]]) -> tuple[str | None, list[Answer]]:
        """Resolve ``rev`` to a commit, then answer ``(verb, suffix)`` queries about ``<commit><suffix>``.

        One ``cat-file --batch-command`` process; ``verb`` is ``info`` or ``contents``. The commit is
        resolved first and every query names it by id, so all answers come from one snapshot even
        while the branch moves.

        Returns:
            ``(commit or None, answers)``; with no such commit every answer is ``(None, None, None)``.
        """
        proc = self._spawn("cat-file", "--batch-command")
        _send(proc, f"info {rev}^{{commit}}\n".encode())
        header = _read_line(proc)
        if not header or header.rstrip().endswith((b"missing", b"ambiguous")):
            proc.communicate(b"")
            return None, [(None, None, None)] * len(queries)
        commit = header.split()[0].decode()
        out, err = proc.communicate(encode_name("".join(f"{verb} {commit}{s}\n" for verb, s in queries)))
        if proc.returncode != 0:
            raise StoreError(f"git cat-file failed: {err.decode(errors='replace').strip()}")
        return commit, parse_batch(out, [verb for verb, _ in queries])

    @contextmanager
    def tree_maker(self) -> Iterator[Callable[[Listing], str]]:
        """A ``git mktree -z --batch`` process for the duration of the block; call it to write a tree."""
        proc = self._spawn("mktree", "-z", "--batch")

        def make(entries: Listing) -> str:
            try:
                _send(proc, mktree_input(entries))
            except BrokenPipeError:
                pass  # mktree died; its error is read below
            line = _read_line(proc)
            if not line.endswith(b"\n"):
                proc.kill()
                _, err = proc.communicate()
                raise StoreError(f"git mktree failed: {err.decode(errors='replace').strip()}")
            return line.decode().strip()

        try:
            yield make
        finally:
            if proc.poll() is None:
                proc.communicate(b"")

    def log(self, *args: str) -> list[CommitInfo]:
        """``git log`` with the store's format; ``args`` add revisions, limits and pathspecs."""
        proc = self.run("log", "-z", "--no-renames", "--name-only", f"--format={LOG_FORMAT}", *args)
        return parse_log(proc.stdout)

    # --- the working tree -----------------------------------------------------------------------

    def refresh_worktree(self, ref: str) -> None:
        """Bring the working tree and the shared index to ``ref`` like ``git checkout`` would.

        Writers coalesce: each one first drops a request file, then tries an ``flock`` without
        waiting. The holder clears the request, syncs to the branch tip, releases, and goes round
        again while a request is pending; a writer that finds the lock taken returns at once, since
        its request was dropped before the holder's final check and so the holder syncs past its
        commit. The kernel releases the lock if the holder dies. See :meth:`_sync_worktree` for how
        the files move. Bare repositories and a HEAD on another branch are left alone.

        Raises:
            StoreError: git refused to move the files (the next write tries again).
        """
        git_dir, bare = self.locate() or (None, True)
        if git_dir is None or bare or (git_dir / "HEAD").read_text().strip() != f"ref: {ref}":
            return
        wanted = git_dir / "lore-refresh-wanted"
        wanted.touch()
        with open(git_dir / "lore-refresh.flock", "a+b") as lock:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
                try:
                    wanted.unlink(missing_ok=True)
                    self._sync_worktree(git_dir, ref)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
                if not wanted.exists():
                    return

    def _sync_worktree(self, git_dir: Path, ref: str) -> None:
        """Move the files from the last synced state to the tip of ``ref`` (caller holds the lock).

        Usually one ``read-tree -m -u <last synced> <tip>`` (a two-way merge, as ``git checkout``
        does); the last synced tree-ish is kept in ``<git dir>/lore-worktree-commit``. If git refuses
        (a person committed, or touched files), the checked-out state is taken to be the last synced
        one or the newest commit whose tree equals the shared index's tree. If none matches, a person
        has staged changes and nothing is touched.

        A file a person changed without committing is never overwritten: when the tip changes it too,
        the merge goes to the tip's tree with that file left at the version the person started from,
        every other file moves, and the file is listed in ``<git dir>/lore-worktree-held`` (one path a
        line; :meth:`held_back` reads it, ``lore lint`` reports it). A later refresh tries it again.
        """
        synced_file = git_dir / "lore-worktree-commit"
        tip_file = git_dir / "lore-worktree-tip"
        tip = self.run("rev-parse", "--verify", "-q", ref, check=False).stdout.decode().strip()
        synced = synced_file.read_text().strip() if synced_file.exists() else None
        last_tip = tip_file.read_text().strip() if tip_file.exists() else synced
        if not tip or tip == last_tip:
            return
        env = {"GIT_WORK_TREE": str(self.root)}
        if synced and self.run("read-tree", "-m", "-u", synced, tip, env=env, check=False).returncode == 0:
            self._record_sync(git_dir, tip, tip, [])
            return
        self.run("update-index", "-q", "--refresh", env=env, check=False)
        index_tree = self.out("write-tree", env=env)
        base: str | None = None
        if synced and self.out("rev-parse", f"{synced}^{{tree}}", check=False) == index_tree:
            base = synced
        else:
            listing = self.out("log", f"-n{REFRESH_SCAN}", "--format=%H %T", tip).splitlines()
            base = next((c for c, t in (line.split() for line in listing) if t == index_tree), None)
        if base is None:
            raise StoreError("the shared index has staged changes; working tree left as it is")
        edited = set(_paths(self.run("diff-files", "--name-only", "-z", env=env).stdout))
        changed = set(_paths(self.run("diff-tree", "-r", "--name-only", "-z", base, tip).stdout))
        held = sorted(edited & changed)
        target = self._tree_holding(tip, base, held) if held else tip
        if base != target:
            self.run("read-tree", "-m", "-u", base, target, env=env)
        self._record_sync(git_dir, target, tip, held)
        if held:
            log.warning("working tree: kept %d file(s) a person changed without committing: %s",
                        len(held), ", ".join(held))  # fmt: skip

    def _tree_holding(self, tip: str, base: str, held: list[str]) -> str:
        """The tree of ``tip`` with each ``held`` path as it is in ``base`` (absent if it is absent there)."""
        with tempfile.TemporaryDirectory(prefix="lore-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.run("read-tree", tip, env=env)
            for path in held:
                entry = self.out("ls-tree", "-z", base, "--", path).rstrip("\0")
                if entry:
                    mode, _kind, rest = entry.split(" ", 2)
                    blob = rest.split("\t", 1)[0]
                    self.run("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
                else:
                    self.run("update-index", "--force-remove", "--", path, env=env)
            return self.out("write-tree", env=env)

    def _record_sync(self, git_dir: Path, treeish: str, tip: str, held: list[str]) -> None:
        _record(git_dir / "lore-worktree-commit", treeish)
        _record(git_dir / "lore-worktree-tip", tip)
        held_file = git_dir / HELD_FILE
        if held:
            temp = held_file.with_suffix(".tmp")
            temp.write_text("".join(p + "\n" for p in held))
            temp.replace(held_file)
        else:
            held_file.unlink(missing_ok=True)

    def held_back(self) -> list[str]:
        """Files the last working-tree refresh left alone because a person changed them (see above)."""
        location = self.locate()
        if location is None:
            return []
        held_file = location[0] / HELD_FILE
        if not held_file.exists():
            return []
        return [line for line in held_file.read_text().splitlines() if line]

    # --- stale locks ----------------------------------------------------------------------------

    def remove_stale_locks(self, min_age_s: float) -> list[Path]:
        """Remove lock files older than ``min_age_s`` whose holder is gone.

        Ref locks (``refs/**.lock``, ``HEAD.lock``, ``packed-refs.lock``) go when no live process has
        them open; ``index.lock`` only when, in addition, no ``git`` process works in this repository
        (a person's ``git commit`` holds it while the editor is open). See :func:`lock_users`.

        Returns:
            The lock files removed.
        """
        location = self.locate()
        if location is None:
            return []
        git_dir = location[0]
        candidates = [*(git_dir / "refs").rglob("*.lock")]
        candidates += [git_dir / name for name in ("HEAD.lock", "packed-refs.lock", "index.lock")]
        cutoff = time.time() - min_age_s
        old = []
        for path in candidates:
            try:
                if path.stat().st_mtime < cutoff:
                    old.append(path)
            except FileNotFoundError:
                continue
        if not old:
            return []
        held, git_here = lock_users(self.root, git_dir, old)
        removed = []
        for path in old:
            if path in held or (path.name == "index.lock" and git_here):
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            log.warning("removed stale git lock %s", path)
            removed.append(path)
        return removed


def _paths(output: bytes) -> list[str]:
    return [p for p in output.decode("utf-8", "surrogateescape").split("\0") if p]


def _record(path: Path, commit: str) -> None:
    """Atomically note the commit the working tree was last brought to."""
    temp = path.with_suffix(".tmp")
    temp.write_text(commit + "\n")
    temp.replace(path)


def _send(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Write all of ``data`` to an unbuffered child stdin."""
    assert proc.stdin is not None
    view = memoryview(data)
    while view:
        view = view[proc.stdin.write(view) or 0 :]


def _read_line(proc: subprocess.Popen[bytes]) -> bytes:
    """Read one line from an unbuffered child stdout (empty or unterminated if the child ended)."""
    assert proc.stdout is not None
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = proc.stdout.read(1)
        if not byte:
            break
        line += byte
    return bytes(line)


def lock_users(root: Path, git_dir: Path, locks: Iterable[Path]) -> tuple[set[Path], bool]:
    """Which of ``locks`` a live process has open, and whether a ``git`` process works in this repository.

    Reads Linux ``/proc``: a process "works in the repository" when its name starts with ``git`` and its
    working directory lies inside ``root`` or ``git_dir``; a ``git`` process whose details cannot be read
    counts as working here (the safe answer). Without ``/proc`` nothing can be checked and the answer is
    ``(set(), False)``; the caller's age rule then decides alone.

    Returns:
        ``(locks held open, git working in the repository)``.
    """
    proc = Path("/proc")
    wanted = {str(p.resolve()): p for p in locks}
    held: set[Path] = set()
    git_here = False
    if not proc.is_dir():
        return held, git_here
    places = (str(root.resolve()), str(git_dir.resolve()))
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            is_git = (entry / "comm").read_text().strip().startswith("git")
        except OSError:
            continue
        try:
            if is_git and not git_here:
                cwd = os.readlink(entry / "cwd")
                git_here = any(cwd == p or cwd.startswith(p + "/") for p in places)
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target in wanted:
                    held.add(wanted[target])
        except FileNotFoundError:
            continue  # the process ended while we looked
        except OSError:
            git_here = git_here or is_git
    return held, git_here
