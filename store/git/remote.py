"""A central repository of record that every host's clone publishes to (DESIGN section 2).

Each host keeps its own repository; its branch is a mirror of the remote's branch as last fetched.
A publish builds the commit on that head and pushes it with
``--force-with-lease=refs/heads/<branch>:<old>``: the remote moves only if its branch still is
``<old>``, the same compare-and-swap as a local ``update-ref``, done by the remote under its own ref
lock. A rejected push is a lost race: the caller fetches, moves the local branch to the remote's
head, and rebuilds (rebase when its paths did not change, page conflict when they did). A person's
push to the remote is just another writer.

GitPython is the thin wrapper here: one :class:`git.Repo` per call, closed after it, driving
``push``, ``fetch`` and ``update-ref``; nothing of its porcelain is used.
"""

from __future__ import annotations

import fcntl
import logging

from git import Repo

from store.errors import StoreError
from store.git_plumbing import check_rev
from store.git_repo import GitRepo

log = logging.getLogger(__name__)

PUSHED_LOG = "lore-pushed.log"
"""File in the git dir listing every commit this host's pushes put on the remote, one a line."""
REMOTE_NAME = "lore-origin"
"""Name of the remote in each host's repository config."""


class RemoteUnavailable(StoreError):
    """The central repository could not be reached (network, server or permission failure)."""


class Remote:
    """The central repository at ``url`` as seen from the local repository ``repo``.

    Args:
        url: Any URL git understands (``git://``, ``ssh://``, ``https://``, a path).
        repo: The host's repository.
        branch: The branch both sides publish on.
    """

    def __init__(self, url: str, repo: GitRepo, branch: str) -> None:
        if not url or url.startswith("-") or any(ord(ch) < 32 for ch in url):
            raise StoreError(f"invalid remote URL {url!r}")
        self.url = url
        self.repo = repo
        self.branch = check_rev(branch)
        self.ref = f"refs/heads/{self.branch}"
        self.tracking = f"refs/remotes/{REMOTE_NAME}/{self.branch}"

    def _git(self, *args: str) -> tuple[int, str, str]:
        with Repo(self.repo.git_dir()) as handle:
            status, out, err = handle.git.execute(
                ["git", *args], env=self.repo.env(), with_extended_output=True, with_exceptions=False,
                strip_newline_in_stdout=False,
            )
        return int(status or 0), str(out), str(err)

    def configure(self) -> None:
        """Point the ``lore-origin`` remote at the URL (idempotent)."""
        status, out, _ = self._git("config", "--get", f"remote.{REMOTE_NAME}.url")
        if status == 0 and out.strip() == self.url:
            return
        self._git("config", f"remote.{REMOTE_NAME}.url", self.url)

    def fetch(self) -> str | None:
        """Fetch the remote's branch into the tracking ref.

        Returns:
            The remote's head commit, or None when the remote has no such branch yet.

        Raises:
            RemoteUnavailable: The remote could not be reached.
        """
        spec = f"+{self.ref}:{self.tracking}"
        with open(self.repo.git_dir() / "lore-fetch.flock", "a+b") as lock:  # one fetch at a time per host:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two would race on the tracking ref
            status, _, err = self._git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", self.url, spec)
        if status != 0:
            if "couldn't find remote ref" in err or "could not find remote ref" in err.lower():
                return None
            raise RemoteUnavailable(f"fetch from {self.url} failed: {err.strip()[-500:]}")
        status, out, _ = self._git("rev-parse", "--verify", "-q", f"{self.tracking}^{{commit}}")
        return out.strip() or None if status == 0 else None

    def push(self, new: str, old: str | None) -> bool:
        """Move the remote's branch from ``old`` (None: it must not exist) to ``new``.

        Returns:
            True when the remote took it; False when its branch was not ``old`` (a lost race).

        Raises:
            RemoteUnavailable: The push failed for another reason.
        """
        lease = f"--force-with-lease={self.ref}:{old or ''}"
        status, out, err = self._git("push", "--porcelain", "--quiet", lease, self.url,
                                     f"{check_rev(new)}:{self.ref}")
        if status == 0:
            with open(self.repo.git_dir() / PUSHED_LOG, "a") as fh:  # one short append: atomic
                fh.write(new + "\n")
            return True
        if any(line.startswith("!") for line in out.splitlines()) or "stale info" in err or "rejected" in err:
            return False
        raise RemoteUnavailable(f"push to {self.url} failed: {(err or out).strip()[-500:]}")

    def is_ancestor(self, commit: str, of: str) -> bool:
        """Whether ``commit`` is ``of`` or one of its ancestors (locally known objects)."""
        status, _, _ = self._git("merge-base", "--is-ancestor", check_rev(commit), check_rev(of))
        return status == 0
