"""Errors raised by the ``store`` package.

The tree is small on purpose; callers catch the narrowest class they can act on::

    StoreError                  anything the store could not do (a git command failed, a bad revision)
     ├── PageConflict           a page changed since the caller read it: re-read, re-render, write again
     ├── StoreLocked            a git lock stayed taken (or HEAD kept moving) past the store's limits:
     │                          retry the whole unit of work later
     └── InvalidPath            a path is not a safe repository-relative POSIX path (a programming error
                                or untrusted input that must never reach the store)
"""

from __future__ import annotations

from collections.abc import Iterable


class StoreError(Exception):
    """Base class of every error the store raises."""


class PageConflict(StoreError):
    """Pages changed between the caller's read and its write.

    Attributes:
        paths: The repository paths whose version at HEAD no longer matches the version the caller
            read, sorted.
    """

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths: list[str] = sorted(set(paths))
        super().__init__("page conflict: changed since read: " + ", ".join(self.paths))


class StoreLocked(StoreError):
    """A git lock could not be taken in time, or HEAD moved more often than the store retries."""


class InvalidPath(StoreError):
    """A path is absolute, escapes the repository, names ``.git``, or holds control characters."""
