"""Watching the ingest folder: hand each settled file to a callback, once per change.

watchdog reports created, modified and moved-in files; because watchers drop events (overflowing
inotify queues, network file systems, a folder replaced wholesale), a full rescan runs every
``rescan_interval_s`` as well, and ``scan_once`` runs at start-up. Either way a file is only a
*candidate*: it is handed to ``on_file`` once its size and mtime have stayed the same for ``settle_s``
(a file still being copied keeps changing), and only once per (size, mtime, inode), so rescans do not
re-read unchanged files. Names matching an ignore glob at any depth (``.*``, the package's own ``*.py``
...) or a name of a file still being written (``ALWAYS_IGNORED``: ``*.tmp``, ``*.part``, partial
downloads) are never offered, and symlinked folders are not descended into. Symlinks,
FIFOs and other special files are offered like any file so that intake can refuse them with a reason;
the watcher itself only ever calls ``lstat`` on them.

``on_file`` runs on the watcher's own thread, one file at a time; an exception it raises is logged and
the file is offered again after its next change or at the next rescan.

Deletions: a file this watcher offered that disappears (a delete or move-away event, or missing from a
rescan) is handed to ``on_gone`` once it has stayed missing for ``settle_s`` (an editor that deletes
and writes a file again does not count). In one pass, settled files are offered before gone ones, so
``mv a.md b.md`` reaches intake as the new name first (a rename), then the old name's deletion. A file
deleted while no watcher runs is not noticed.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger(__name__)

_Stamp = tuple[int, int, int]  # size, mtime_ns, inode

#: Names of files that are still being written, never offered whatever ``ignore_globs`` says:
#: producers' temporary names, browsers' partial downloads, editors' swap and lock files.
ALWAYS_IGNORED = ("*.tmp", "*.part", "*.partial", "*.crdownload", "*.download", "*.swp", "~$*", ".~lock.*")


class Watcher:
    """Offer settled files of ``ingest_dir`` (recursively) to ``on_file``.

    Args:
        ingest_dir: the folder to watch.
        on_file: called with each settled, changed file's path.
        ignore_globs: file or folder names never offered (matched against every path component).
        settle_s: how long size and mtime must stay unchanged before a file is offered.
        rescan_interval_s: period of the full rescan.
        clock: wall-clock seconds (``time.time``); settle times compare against file mtimes.
        on_gone: called with the path of each offered file that stayed missing for ``settle_s``.
    """

    def __init__(
        self,
        ingest_dir: Path,
        on_file: Callable[[Path], None],
        ignore_globs: Iterable[str],
        settle_s: float,
        rescan_interval_s: float,
        *,
        clock: Callable[[], float] = time.time,
        on_gone: Callable[[Path], None] | None = None,
    ) -> None:
        self.ingest_dir = Path(ingest_dir)
        self.on_file = on_file
        self.on_gone = on_gone
        self.ignore_globs = tuple(dict.fromkeys([*ignore_globs, *ALWAYS_IGNORED]))
        self.settle_s = settle_s
        self.rescan_interval_s = rescan_interval_s
        self._clock = clock
        self._lock = threading.Lock()  # guards _pending and _done
        self._run_lock = threading.Lock()  # one batch of on_file calls at a time
        self._pending: dict[Path, tuple[_Stamp, float]] = {}
        self._done: dict[Path, _Stamp] = {}
        self._gone: dict[Path, float] = {}  # offered files now missing, since when
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Scan once, then watch: a watchdog observer plus the settle/rescan thread."""
        self._stop.clear()
        self.scan_once()
        observer = Observer()
        observer.schedule(_Handler(self), str(self.ingest_dir), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._thread = threading.Thread(target=self._loop, name="lore-ingest-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop watching and join both threads (a running ``on_file`` call is allowed to finish)."""
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout_s)
            self._observer = None
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    # --- scanning -------------------------------------------------------------------------------

    def scan_once(self) -> list[Path]:
        """Walk the whole folder, note every candidate, and offer those that have settled.

        Returns:
            The files handed to ``on_file`` by this call.
        """
        seen = set()
        for path in self.walk():
            seen.add(path)
            self.observe(path)
        with self._lock:
            for gone in [p for p in self._done if p not in seen]:
                del self._done[gone]
                self._gone.setdefault(gone, self._clock())
            for gone in [p for p in self._pending if p not in seen]:
                del self._pending[gone]
        return self.process_ready()

    def observe(self, path: Path) -> None:
        """Note that ``path`` may have changed (from an event or a scan)."""
        path = Path(path)
        if self.ignored(path):
            return
        stamp = _stamp(path)
        with self._lock:
            if stamp is None:
                self._pending.pop(path, None)
                if self._done.pop(path, None) is not None:
                    self._gone.setdefault(path, self._clock())
                    self._wake.set()
                return
            self._gone.pop(path, None)
            if self._done.get(path) == stamp:
                return
            seen = self._pending.get(path)
            if seen is None or seen[0] != stamp:
                self._pending[path] = (stamp, self._clock())
        self._wake.set()

    def process_ready(self) -> list[Path]:
        """Offer every candidate whose size and mtime held still for ``settle_s``."""
        offered: list[Path] = []
        with self._run_lock:
            for path in self._ready():
                if self._stop.is_set():
                    break
                try:
                    self.on_file(path)
                except Exception:
                    log.exception("ingest of %s failed; it is retried after its next change", path)
                    with self._lock:
                        self._done.pop(path, None)
                    continue
                offered.append(path)
            for path in self._settled_gone():
                if self._stop.is_set():
                    break
                try:
                    if self.on_gone is not None:
                        self.on_gone(path)
                except Exception:
                    log.exception("handling the deletion of %s failed; it is not retried", path)
        return offered

    def ignored(self, path: Path) -> bool:
        """True when any component of ``path`` below the ingest folder matches an ignore glob."""
        try:
            parts = path.relative_to(self.ingest_dir).parts
        except ValueError:
            return True
        return any(fnmatch.fnmatchcase(part, glob) for part in parts for glob in self.ignore_globs)

    # --- internals ------------------------------------------------------------------------------

    def _ready(self) -> list[Path]:
        now = self._clock()
        ready = []
        with self._lock:
            for path, (stamp, since) in list(self._pending.items()):
                current = _stamp(path)
                if current is None:
                    del self._pending[path]
                elif current != stamp:
                    self._pending[path] = (current, now)
                elif now - since >= self.settle_s or now - stamp[1] / 1e9 >= self.settle_s:
                    del self._pending[path]
                    self._done[path] = stamp
                    ready.append(path)
        return sorted(ready)

    def _settled_gone(self) -> list[Path]:
        now = self._clock()
        out = []
        with self._lock:
            for path, since in list(self._gone.items()):
                if os.path.lexists(path):
                    del self._gone[path]  # back again: its next change is offered as usual
                elif now - since >= self.settle_s:
                    del self._gone[path]
                    out.append(path)
        return sorted(out)

    def walk(self, top: Path | None = None) -> Iterator[Path]:
        """Files below ``top`` (default the ingest folder), skipping ignored names and symlinked folders."""
        for folder, dirs, files in os.walk(top or self.ingest_dir, followlinks=False):
            base = Path(folder)
            dirs[:] = sorted(d for d in dirs if not self._ignored_name(d))
            for name in sorted(files):
                if not self._ignored_name(name):
                    yield base / name

    def _ignored_name(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, glob) for glob in self.ignore_globs)

    def _loop(self) -> None:
        next_rescan = time.monotonic() + self.rescan_interval_s
        tick = max(0.05, min(self.settle_s / 2, 1.0))
        while not self._stop.is_set():
            with self._lock:
                waiting = bool(self._pending or self._gone)
            timeout = tick if waiting else max(0.0, next_rescan - time.monotonic())
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                if time.monotonic() >= next_rescan:
                    next_rescan = time.monotonic() + self.rescan_interval_s
                    self.scan_once()
                else:
                    self.process_ready()
            except Exception:
                log.exception("ingest watcher pass failed; continuing")


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_created(self, event: FileSystemEvent) -> None:
        self._offer(event.src_path, event.is_directory)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:  # a folder "modified" only means its listing changed
            self._offer(event.src_path, False)

    def on_closed(self, event: FileSystemEvent) -> None:
        self._offer(event.src_path, event.is_directory)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._offer(event.dest_path, event.is_directory)
        if not event.is_directory:
            self.watcher.observe(Path(os.fsdecode(event.src_path)))  # gone from the old name

    def on_deleted(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.watcher.observe(Path(os.fsdecode(event.src_path)))

    def _offer(self, raw: str | bytes, is_directory: bool) -> None:
        path = Path(os.fsdecode(raw))
        if not is_directory:
            self.watcher.observe(path)
        elif not self.watcher.ignored(path):
            # a folder created or moved in arrives as one event; its files are found by walking it
            for found in self.watcher.walk(path):
                self.watcher.observe(found)


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)
