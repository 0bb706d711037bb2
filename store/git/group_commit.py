"""Group commit: the changes ready at the same moment go out in one commit with one ref update.

Every writer process on a host shares one queue folder, ``<git dir>/lore-queue``. A write:

1. drops its change there: the new contents as ``<id>.<n>.blob`` files, then ``<id>.req`` (JSON:
   path -> blob file or null, the expected versions, message, trailers), created by rename so a
   leader never sees half a request; ids start with a nanosecond clock, so a listing is FIFO;
2. looks for its outcome ``<id>.out``; if there is none, tries ``leader.flock`` (``flock(2)``, not
   waiting). Whoever gets it is the leader: it takes every request queued (its own among them, up to
   :data:`MAX_BATCH`), publishes them as one commit (:mod:`store.git.batch`), writes one ``<id>.out``
   per request, releases the lock and then wakes every waiting writer;
3. a writer that found the lock taken waits on its own FIFO ``<id>.fifo`` (made before it queued, so
   no wake-up is lost) and goes back to step 2 when woken, or after :data:`WAKE_TIMEOUT_S`.

A lone writer gets the lock at once and publishes alone: nothing waits for company. Under load,
requests pile up while a leader works, and the next leader takes them all; the batch size follows
the load by itself. Writers whose change is published learn it as soon as the batch ends, not when
the lock next comes free. Page locks (:meth:`CommitQueue.page_locks`) keep two writers of one host
from building on the same version of a page.

Crash safety. Before it moves the ref, a leader writes ``journal.json`` (the commit and every
request's outcome). If it dies (the kernel drops its lock), the next leader reads the journal first:
when the commit is on the branch, it hands out the journalled outcomes; when not, the requests are
still queued and go out in the next batch. A writer that dies after queueing still has its change
published; a leftover ``.out`` or blob file is swept after :data:`ORPHAN_AGE_S`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import select
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store.errors import InvalidPath, PageConflict, StoreError, StoreLocked
from store.git_plumbing import ABSENT

PATH_STRIPES = 4096
"""Page locks are striped over this many lock files (a path's stripe is a hash of it)."""
MAX_BATCH = 64
"""Most requests one leader publishes in one commit."""
GATHER_MAX_S = 0.01
"""Longest a leader waits for writers that are building a change right now (never when none is)."""
WAKE_TIMEOUT_S = 0.5
"""A waiting writer looks at the queue at least this often even when nobody wakes it."""
ORPHAN_AGE_S = 3600.0
"""Outcome and blob files older than this whose writer never collected them are removed."""

_ERRORS: dict[str, type[StoreError]] = {
    "InvalidPath": InvalidPath,
    "StoreLocked": StoreLocked,
    "StoreError": StoreError,
}


@dataclass
class Change:
    """One writer's change as it sits in the queue.

    Attributes:
        id: Queue id (FIFO order).
        changes: path -> file holding the new contents, or None to delete the path.
        expected: path -> version the writer built on (blob id or ABSENT).
        message: Commit message of this change.
        trailers: ``(key, value)`` trailers of this change.
    """

    id: str
    changes: dict[str, Path | None]
    expected: dict[str, str]
    message: str
    trailers: list[tuple[str, str]]


@dataclass
class Outcome:
    """What became of one queued change.

    Attributes:
        commit: The commit holding the change (HEAD when it changed nothing); None on a conflict.
        parent: The commit it was published on top of.
        blobs: path -> blob id written (None: the path is absent), for every changed path.
        conflict: Expected paths whose version had moved (the change was not published).
        changed: Whether the change altered the tree.
        rebases: How often the batch was rebuilt because the branch moved under the leader.
        batch: How many changes shared the commit.
        error: ``(class name, detail)`` when the change was refused for another reason.
    """

    commit: str | None = None
    parent: str | None = None
    blobs: dict[str, str | None] = field(default_factory=dict)
    conflict: list[str] = field(default_factory=list)
    changed: bool = False
    rebases: int = 0
    batch: int = 1
    error: tuple[str, str] | None = None

    def raise_for_error(self) -> None:
        """Raise the conflict or error this outcome carries, if any."""
        if self.conflict:
            raise PageConflict(self.conflict)
        if self.error is not None:
            raise _ERRORS.get(self.error[0], StoreError)(self.error[1])

    def to_json(self) -> dict[str, Any]:
        return {"commit": self.commit, "parent": self.parent, "blobs": self.blobs, "conflict": self.conflict,
                "changed": self.changed, "rebases": self.rebases, "batch": self.batch,
                "error": list(self.error) if self.error else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        error = data.get("error")
        return cls(commit=data["commit"], parent=data["parent"], blobs=dict(data["blobs"]),
                   conflict=list(data["conflict"]), changed=bool(data["changed"]), rebases=int(data["rebases"]),
                   batch=int(data["batch"]), error=(str(error[0]), str(error[1])) if error else None)


Publisher = Callable[[Sequence[Change], Callable[[str, Mapping[str, Outcome]], None]], dict[str, Outcome]]
"""Publishes a batch; calls ``journal(commit, outcomes)`` just before it moves the ref."""


class CommitQueue:
    """The group-commit queue of one repository on one host.

    Args:
        folder: The queue folder (``<git dir>/lore-queue``), created on first use.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._batches = 0

    def submit(
        self,
        changes: Mapping[str, bytes | None],
        expected: Mapping[str, str],
        message: str,
        trailers: Sequence[tuple[str, str]],
        publish: Publisher,
        landed: Callable[[str], bool],
        building: Path | None = None,
        queued: Callable[[], None] | None = None,
    ) -> tuple[Outcome, bool]:
        """Queue one change and return its outcome once a leader (maybe this caller) published it.

        Args:
            changes: path -> new bytes, or None to delete.
            expected: path -> version the change was built on.
            message: Commit message.
            trailers: Commit trailers.
            publish: Publishes a batch (called when this caller leads).
            landed: Whether a journalled commit is on the branch (crash recovery).
            building: The caller's marker from :meth:`building`, removed once the change is queued.
            queued: Called once the change is queued and recorded as pending (see :meth:`pending`);
                the caller releases its page locks there, so the page's next writer builds on this
                change while it waits for its outcome.

        Returns:
            ``(outcome, led)``: ``led`` is True when this caller published a batch itself.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        rid = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        spec: dict[str, Any] = {"changes": {}, "expected": dict(expected), "message": message,
                                "trailers": [list(t) for t in trailers]}
        for n, (path, data) in enumerate(changes.items()):
            if data is None:
                spec["changes"][path] = None
                continue
            blob = self.folder / f"{rid}.{n}.blob"
            blob.write_bytes(data)
            spec["changes"][path] = blob.name
        fifo = self.folder / f"{rid}.fifo"
        os.mkfifo(fifo)
        wake = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        # Hold a write end too: once a waker closes its end, a FIFO with no writer left reads as EOF,
        # and select() would return at once, every time, turning the wait into a busy loop.
        keep = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            temp = self.folder / f"{rid}.tmp"
            temp.write_text(json.dumps(spec))
            temp.replace(self.folder / f"{rid}.req")
            if queued is not None:
                self._record_pending(rid, changes, spec["changes"])
                queued()
            if building is not None:
                building.unlink(missing_ok=True)
            led = False
            while True:
                outcome = self._collect(rid)
                if outcome is not None:
                    return outcome, led
                if self._try_lead(rid, publish, landed):
                    led = True
                    continue
                select.select([wake], [], [], WAKE_TIMEOUT_S)
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 4096)
        finally:
            os.close(keep)
            os.close(wake)
            fifo.unlink(missing_ok=True)

    def _record_pending(self, rid: str, changes: Mapping[str, bytes | None], files: Mapping[str, str | None]) -> None:
        folder = self.folder / "pending"
        folder.mkdir(exist_ok=True)
        for path, data in changes.items():
            version = ABSENT if data is None else blob_id(data)
            entry = {"path": path, "rid": rid, "version": version, "blob": files[path]}
            target = folder / _path_key(path)
            temp = target.with_suffix(".tmp")
            temp.write_text(json.dumps(entry))
            temp.replace(target)

    def pending(self, paths: Iterable[str]) -> dict[str, tuple[str, bytes | None]]:
        """Queued changes not yet decided that wrote ``paths``: path -> (version, content).

        Call it holding the paths' page locks. A writer builds on a pending change instead of HEAD,
        so several changes to one page can go out in one batch, chained: each is checked against the
        blob of the one queued before it. If that one does not land, the chained one gets a conflict
        and builds again, on HEAD. Only SHA-1 repositories (the blob id is computed here).
        """
        found: dict[str, tuple[str, bytes | None]] = {}
        for path in paths:
            try:
                entry = json.loads((self.folder / "pending" / _path_key(path)).read_text())
                if entry["path"] != path or not (self.folder / f"{entry['rid']}.req").exists():
                    continue
                data = (self.folder / entry["blob"]).read_bytes() if entry["blob"] else None
            except (FileNotFoundError, ValueError, KeyError):
                continue
            found[path] = (str(entry["version"]), data)
        return found

    def _try_lead(self, rid: str, publish: Publisher, landed: Callable[[str], bool]) -> bool:
        """Lead one batch if no leader is at work; False when another one is (wait to be woken).

        After the batch the lock is released first and then every waiter is woken through its FIFO:
        those whose outcome is written collect it, the others race for the lock to lead the next
        batch. Woken before the release, a waiter could find the lock still taken and miss its turn.
        """
        with open(self.folder / "leader.flock", "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            try:
                if not (self.folder / f"{rid}.out").exists():
                    self._lead(publish, landed)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        self._wake_all()
        return True

    def _wake_all(self) -> None:
        for fifo in self.folder.glob("*.fifo"):
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # its writer is gone (or not listening yet: it checks before it waits)
            with contextlib.suppress(OSError):
                os.write(fd, b"!")
            os.close(fd)

    @contextlib.contextmanager
    def building(self) -> Iterator[Path]:
        """Mark this writer as building a change for the block (see :meth:`_gather`)."""
        folder = self.folder / "building"
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        marker.touch()
        try:
            yield marker
        finally:
            marker.unlink(missing_ok=True)

    def _gather(self) -> None:
        """Give writers that hold their page locks and are building a change a moment to queue it.

        Only when such writers exist, and at most :data:`GATHER_MAX_S`: a lone writer never waits.
        Without this, the first change queued after a batch starts the next batch alone while the
        others are a few milliseconds from ready, and batches stay small.
        """
        folder = self.folder / "building"
        deadline = time.monotonic() + GATHER_MAX_S
        while time.monotonic() < deadline:
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                return
            if not any(_alive(name) for name in names):
                return
            time.sleep(0.0005)

    @contextlib.contextmanager
    def page_locks(self, paths: Iterable[str]) -> Iterator[None]:
        """Hold the page locks of ``paths`` on this host for the block (taken in one global order).

        A writer holds them from its read until its change is queued, so two writers on one host never
        build on the same version of a page: the second builds on the first's (see :meth:`pending`).
        Without them a batch would carry several changes to a hot page built on one version, and all
        but one would come back as conflicts. Locks are ``flock(2)`` on striped files; the kernel drops them if the
        holder dies.
        """
        stripes = sorted({int(hashlib.sha1(p.encode("utf-8", "surrogateescape")).hexdigest()[:8], 16)
                          % PATH_STRIPES for p in paths})
        folder = self.folder / "pages"
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            for stripe in stripes:
                lock = stack.enter_context(open(folder / f"{stripe:04d}.flock", "a+b"))
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _collect(self, rid: str) -> Outcome | None:
        out = self.folder / f"{rid}.out"
        try:
            outcome = Outcome.from_json(json.loads(out.read_text()))
        except FileNotFoundError:
            return None
        out.unlink(missing_ok=True)
        for blob in self.folder.glob(f"{rid}.*.blob"):
            blob.unlink(missing_ok=True)
        return outcome

    def _lead(self, publish: Publisher, landed: Callable[[str], bool]) -> None:
        """Recover a dead leader's journal, then publish what is queued (the caller holds the lock)."""
        self._recover(landed)
        self._gather()
        batch = self._take()
        if not batch:
            return
        try:
            outcomes = publish(batch, self._journal)
        except StoreError as exc:
            outcomes = {c.id: Outcome(error=(type(exc).__name__, str(exc))) for c in batch}
        for change in batch:
            self._finish(change.id, outcomes[change.id])
        (self.folder / "journal.json").unlink(missing_ok=True)
        self._batches += 1
        if self._batches % 100 == 1:
            self._sweep()

    def _take(self) -> list[Change]:
        names = sorted(p.name for p in self.folder.glob("*.req"))[:MAX_BATCH]
        batch = []
        for name in names:
            rid = name[: -len(".req")]
            try:
                spec = json.loads((self.folder / name).read_text())
            except FileNotFoundError:
                continue
            except ValueError as exc:
                self._finish(rid, Outcome(error=("StoreError", f"unreadable queued change: {exc}")))
                continue
            batch.append(Change(
                id=rid,
                changes={p: (self.folder / f) if f is not None else None for p, f in spec["changes"].items()},
                expected=dict(spec["expected"]),
                message=str(spec["message"]),
                trailers=[(str(k), str(v)) for k, v in spec["trailers"]],
            ))
        return batch

    def _journal(self, commit: str, outcomes: Mapping[str, Outcome]) -> None:
        temp = self.folder / "journal.tmp"
        temp.write_text(json.dumps({"commit": commit, "outcomes": {k: v.to_json() for k, v in outcomes.items()}}))
        temp.replace(self.folder / "journal.json")

    def _recover(self, landed: Callable[[str], bool]) -> None:
        journal = self.folder / "journal.json"
        try:
            data = json.loads(journal.read_text())
        except (FileNotFoundError, ValueError):
            journal.unlink(missing_ok=True)
            return
        if landed(str(data["commit"])):
            for rid, outcome in data["outcomes"].items():
                if (self.folder / f"{rid}.req").exists():
                    self._finish(rid, Outcome.from_json(outcome))
        journal.unlink(missing_ok=True)

    def _finish(self, rid: str, outcome: Outcome) -> None:
        temp = self.folder / f"{rid}.outtmp"
        temp.write_text(json.dumps(outcome.to_json()))
        temp.replace(self.folder / f"{rid}.out")
        (self.folder / f"{rid}.req").unlink(missing_ok=True)

    def _sweep(self) -> None:
        """Remove outcomes and blobs whose writer died before collecting them."""
        cutoff = time.time() - ORPHAN_AGE_S
        for path in self.folder.iterdir():
            if path.suffix in (".out", ".blob", ".tmp", ".outtmp", ".fifo"):
                rid = path.name.split(".", 1)[0]
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < cutoff and not (self.folder / f"{rid}.req").exists():
                        path.unlink()


def _alive(marker: str) -> bool:
    """Whether the process that made a building marker (``<pid>-<random>``) still runs."""
    try:
        os.kill(int(marker.split("-", 1)[0]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def blob_id(data: bytes) -> str:
    """The SHA-1 git blob id of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _path_key(path: str) -> str:
    return hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest() + ".json"
