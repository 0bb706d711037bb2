"""Reading one file from the ingest folder without trusting anything about it.

Rules, each a refusal with its reason when broken:

- only regular files: symlinks, FIFOs, sockets, devices and folders are refused from ``lstat``, and
  the opened descriptor is checked again with ``fstat`` (same inode, still regular);
- nothing outside the folder: with a ``root``, the file is opened by walking from the root folder one
  component at a time with ``O_NOFOLLOW`` (``openat``), so neither a symlinked component nor a rename
  race can lead outside it;
- opening never blocks (``O_NONBLOCK``: a FIFO swapped in cannot hang the reader);
- size is capped before reading (``st_size``) and while reading (never more than ``max_bytes + 1``
  bytes), so a 1 GB sparse file is refused without being read;
- a file that changes while it is read (size, mtime or inode differ afterwards) is refused as "changed
  while reading"; the watcher will offer it again once it is stable.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import Refused

_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class FileBytes:
    """A file's content and where it was found.

    Attributes:
        data: the bytes.
        relative: the path relative to the root (or the bare file name without a root), POSIX form.
    """

    data: bytes
    relative: str


def read_file(path: Path, *, root: Path | None, max_bytes: int) -> FileBytes:
    """Read a regular file, inside ``root`` when given, of at most ``max_bytes``.

    Raises:
        Refused: the file is not a regular file, is outside ``root``, too big, empty, unreadable,
            or changed while it was read.
    """
    before = _lstat(path)
    relative = _relative(path, root) if root is not None else Path(path).name
    if before.st_size > max_bytes:
        raise Refused(f"file is {human_size(before.st_size)}; the limit is {human_size(max_bytes)}")
    if before.st_size == 0:
        raise Refused("file is empty")
    fd = _open(path, root, relative)
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
            raise Refused("file was replaced while it was being opened")
        data = _read_capped(fd, max_bytes)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        raise Refused("file disappeared while it was being read") from None
    stamp = (before.st_size, before.st_mtime_ns)
    if (
        (after.st_size, after.st_mtime_ns) != stamp
        or (now.st_size, now.st_mtime_ns, now.st_ino) != (*stamp, before.st_ino)
        or len(data) != before.st_size
    ):
        raise Refused("file changed while reading; it is read again once it is complete")
    return FileBytes(data=data, relative=relative)


def _lstat(path: Path) -> os.stat_result:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise Refused("file disappeared before it could be read") from None
    except OSError as exc:
        raise Refused(f"file cannot be inspected: {exc.strerror}") from None
    kind = _kind(st.st_mode)
    if kind:
        raise Refused(f"{kind}, not a regular file; only regular files are read")
    return st


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a special file"


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, lexically or after resolving both; Refused when outside."""
    abs_root = os.path.abspath(root)
    rel = os.path.relpath(os.path.abspath(path), abs_root)
    if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
        real_parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        rel = os.path.relpath(os.path.join(real_parent, os.path.basename(path)), os.path.realpath(abs_root))
    if rel in (".", "..") or rel.startswith(".." + os.sep):
        raise Refused("file is outside the ingest folder")
    return Path(rel).as_posix()


def _open(path: Path, root: Path | None, relative: str) -> int:
    try:
        if root is None:
            return os.open(path, _OPEN_FLAGS)
        return _open_beneath(root, relative)
    except Refused:
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink where a folder or the file should be
            raise Refused("path goes through a symbolic link; only files inside the ingest folder are read") from None
        raise Refused(f"file cannot be opened: {exc.strerror}") from None


def _open_beneath(root: Path, relative: str) -> int:
    """Open ``root/relative`` one component at a time, following no symlink on the way."""
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise Refused("file is outside the ingest folder")
    dir_fd = os.open(os.path.realpath(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
        return os.open(parts[-1], _OPEN_FLAGS, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def _read_capped(fd: int, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total <= max_bytes:
        try:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
        except BlockingIOError:
            raise Refused("file is not ready to be read") from None
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise Refused(f"file grew beyond the limit of {human_size(max_bytes)} while it was read")
    return b"".join(chunks)


def human_size(n: int) -> str:
    """A byte count for people: ``512 bytes``, ``1.5 MB``."""
    if n < 1024:
        return f"{n} bytes"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"
