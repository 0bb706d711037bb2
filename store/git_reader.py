"""Reading the wiki's git objects from one long-lived process, for the read path (DESIGN section 5).

:class:`GitReader` keeps GitPython's object database open (``Repo.odb``, whose ``git cat-file
--batch`` child stays up between calls), so a page read starts no process. It tracks the branch tip by
looking at the ref file (or ``packed-refs``) with ``stat``: when neither changed, the previous HEAD
snapshot is reused; when one did, the ref is read again and, if it names another commit, the
snapshot (every ``path -> blob id`` under one folder) is rebuilt by walking that commit's trees
through the same object reader.

One reader per process: open it when the app starts and :meth:`close` it at shutdown. Calls are
serialised by a lock (the batch process answers one question at a time).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from store.errors import StoreError

__all__ = ["GitReader", "HeadSnapshot"]

_NULL = "0" * 40
_TREE_MODE = 0o040000
_FILE_MODES = (0o100644, 0o100755)


@dataclass(frozen=True)
class HeadSnapshot:
    """The tip of the branch at one moment and the blobs of the files under ``prefix`` there."""

    commit: str | None
    blobs: dict[str, str]


class GitReader:
    """Blobs and trees of the repository in ``git_dir`` read through one persistent ``cat-file``.

    Args:
        git_dir: The repository's git directory (``.git`` or the bare repository).
        ref: The branch ref the wiki lives on, e.g. ``refs/heads/main``.
        prefix: The folder whose files a snapshot lists (``wiki/``).
    """

    def __init__(self, git_dir: Path, ref: str, prefix: str = "wiki/") -> None:
        import git  # GitPython: imported here so store's other modules do not pay for it

        self.git_dir = Path(git_dir)
        self.ref = ref
        self.prefix = prefix
        common = self.git_dir / "commondir"
        self._refs_dir = (self.git_dir / common.read_text().strip()).resolve() if common.is_file() else self.git_dir
        self._repo = git.Repo(str(self.git_dir))
        self._lock = threading.Lock()
        self._stamp: tuple[object, ...] | None = None
        self._snapshot = HeadSnapshot(None, {})
        self._closed = False

    # --- HEAD --------------------------------------------------------------------------------------

    def _ref_stamp(self) -> tuple[object, ...]:
        """What identifies the current state of the ref on disk, from two ``stat`` calls."""
        stamp: list[object] = []
        for path in (self._refs_dir / self.ref, self._refs_dir / "packed-refs"):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                stamp.append(None)
                continue
            stamp.append((st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns))
        return tuple(stamp)

    def _read_ref(self) -> str | None:
        """The commit the branch names, from the loose ref file or else ``packed-refs``."""
        try:
            value = (self._refs_dir / self.ref).read_text().strip()
            if len(value) in (40, 64) and value != _NULL:
                return value
        except FileNotFoundError:
            pass
        try:
            lines = (self._refs_dir / "packed-refs").read_text().splitlines()
        except FileNotFoundError:
            return None
        for line in lines:
            parts = line.split(" ", 1)
            if len(parts) == 2 and parts[1] == self.ref:
                return parts[0]
        return None

    def current(self) -> HeadSnapshot | None:
        """The HEAD snapshot if the ref has not moved since it was taken, else None (nothing is read)."""
        return self._snapshot if self._ref_stamp() == self._stamp else None

    def snapshot(self) -> HeadSnapshot:
        """The HEAD snapshot, rebuilt only when the ref moved since the last call."""
        stamp = self._ref_stamp()
        snap = self._snapshot
        if stamp == self._stamp:
            return snap
        with self._lock:
            if stamp == self._stamp:
                return self._snapshot
            commit = self._read_ref()
            if commit != self._snapshot.commit:
                blobs = self._list(commit) if commit else {}
                self._snapshot = HeadSnapshot(commit, blobs)
            # Taken before the ref was read: a move during the read is seen by the next call.
            self._stamp = stamp
            return self._snapshot

    # --- objects -----------------------------------------------------------------------------------

    def _object(self, rev: str) -> tuple[str, str, bytes]:
        """(id, type, content) of one object, by id or ``<commit>:<path>`` (caller holds the lock)."""
        if self._closed:
            raise StoreError("the git reader is closed")
        try:
            hexsha, kind, _size, data = self._repo.git.get_object_data(rev)
        except ValueError as exc:  # "missing" or "ambiguous" from cat-file
            raise KeyError(rev) from exc
        except Exception as exc:
            raise StoreError(f"git cat-file failed on {rev!r}: {exc}") from exc
        out_kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        out_sha = hexsha.decode() if isinstance(hexsha, bytes) else str(hexsha)
        return out_sha, out_kind, bytes(data)

    def _list(self, commit: str) -> dict[str, str]:
        """``path -> blob id`` of every regular file under ``prefix`` at ``commit`` (lock held)."""
        from git.objects.fun import tree_entries_from_data

        _, kind, data = self._object(commit)
        if kind != "commit":
            raise StoreError(f"{commit} is a {kind}, not a commit")
        tree = data.split(b"\n", 1)[0].split()[1].decode()
        parts = [p for p in self.prefix.strip("/").split("/") if p]
        for part in parts:
            _, _, data = self._object(tree)
            found = [e for e in tree_entries_from_data(data) if e[1] == _TREE_MODE and e[2] == part]
            if not found:
                return {}
            tree = found[0][0].hex()
        base = "/".join(parts)
        out: dict[str, str] = {}
        pending = [(tree, base)]
        while pending:
            tree_id, folder = pending.pop()
            _, _, data = self._object(tree_id)
            for binsha, mode, name in tree_entries_from_data(data):
                path = f"{folder}/{name}" if folder else name
                if mode == _TREE_MODE:
                    pending.append((binsha.hex(), path))
                elif mode in _FILE_MODES:
                    out[path] = binsha.hex()
        return out

    def blob(self, blob_id: str) -> bytes:
        """The content of a blob.

        Raises:
            KeyError: no such object.
            StoreError: the object is no blob, or git failed.
        """
        with self._lock:
            _, kind, data = self._object(blob_id)
        if kind != "blob":
            raise StoreError(f"{blob_id} is a {kind}, not a blob")
        return data

    def blob_at(self, commit: str, path: str) -> tuple[str, bytes] | None:
        """(blob id, content) of ``path`` at ``commit``, or None when that commit has no such file.

        Raises:
            KeyError: ``commit`` names no object.
        """
        with self._lock:
            _, kind, _ = self._object(commit)
            if kind != "commit":
                raise KeyError(commit)
            try:
                sha, kind, data = self._object(f"{commit}:{path}")
            except KeyError:
                return None
        return (sha, data) if kind == "blob" else None

    def resolve_commit(self, rev: str) -> str | None:
        """The full id of the commit ``rev`` (a full or abbreviated id) names, or None."""
        with self._lock:
            try:
                sha, kind, _ = self._object(f"{rev}^{{commit}}")
            except KeyError:
                return None
        return sha if kind == "commit" else None

    def close(self) -> None:
        """Stop the ``cat-file`` children (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._repo.close()
