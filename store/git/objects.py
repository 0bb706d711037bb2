"""Snapshot reads for the write path without starting a process: the ref file and GitPython's object DB.

:meth:`store.git_store.GitStore.update` reads the pages it is about to change on every try. Started as
a ``git cat-file`` process that is one process per write, paid by every writer; here the branch is
resolved from ``refs/heads/<branch>`` (or ``packed-refs``) and the commit, trees and blobs are read
with GitPython's pure-Python object database (``gitdb.GitDB``, loose objects and packs), opened per
call and dropped after it. All answers come from the one commit the ref named when read.

It covers the common layout (files ref backend, SHA-1 objects). Anything else (reftable, SHA-256, a
ref that is a symbolic one) raises :class:`Unsupported` and the caller reads with ``git`` instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from gitdb import GitDB
from gitdb.exc import BadObject

from store.git_plumbing import ABSENT, encode_name, parse_tree

_OID = re.compile(rb"[0-9a-f]{40}\Z")


class Unsupported(Exception):
    """This repository's layout is not one the pure-Python reader handles; read with git."""


def resolve_ref(git_dir: Path, ref: str) -> str | None:
    """The commit id ``ref`` (``refs/heads/<name>``) points at, or None when it does not exist.

    Raises:
        Unsupported: The ref is symbolic, or the repository uses another ref backend.
    """
    common = _common_dir(git_dir)
    if (common / "reftable").is_dir():
        raise Unsupported("reftable ref backend")
    try:
        value = (common / ref).read_bytes().strip()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        value = b""
    if value:
        if not _OID.match(value):
            raise Unsupported(f"{ref} is not a plain SHA-1 ref")
        return value.decode()
    try:
        packed = (common / "packed-refs").read_bytes()
    except FileNotFoundError:
        return None
    target = ref.encode()
    for line in packed.splitlines():
        oid, _, name = line.partition(b" ")
        if name == target and _OID.match(oid):
            return oid.decode()
    return None


def read_paths(git_dir: Path, ref: str, paths: Sequence[str]) -> tuple[str | None, dict[str, tuple[str, bytes | None]]]:
    """Read ``paths`` at the commit ``ref`` names now.

    Returns:
        ``(commit or None, path -> (blob id or ABSENT, content or None))``; directories and other
        non-blob entries read as absent.

    Raises:
        Unsupported: See :func:`resolve_ref`; also an object the reader cannot find or parse.
    """
    commit = resolve_ref(git_dir, ref)
    result: dict[str, tuple[str, bytes | None]] = dict.fromkeys(paths, (ABSENT, None))
    if commit is None:
        return None, result
    db = GitDB(str(_common_dir(git_dir) / "objects"))
    try:
        kind, body = _read(db, commit)
        if kind != b"commit" or not body.startswith(b"tree "):
            raise Unsupported(f"{commit} is not a commit")
        root = body[5:45].decode()
        trees: dict[str, dict[bytes, tuple[str, str]] | None] = {"": _tree(db, root)}
        for path in paths:
            folder, _, name = path.rpartition("/")
            listing = _listing(db, trees, folder)
            entry = listing.get(encode_name(name)) if listing is not None else None
            if entry is None or not entry[0].startswith("100") and entry[0] != "120000":
                continue
            kind, data = _read(db, entry[1])
            if kind == b"blob":
                result[path] = (entry[1], data)
    except (BadObject, ValueError, OSError) as exc:
        raise Unsupported(f"object read failed: {exc}") from exc
    return commit, result


def _listing(db: GitDB, trees: dict[str, dict[bytes, tuple[str, str]] | None], folder: str
             ) -> dict[bytes, tuple[str, str]] | None:
    if folder in trees:
        return trees[folder]
    parent, _, name = folder.rpartition("/")
    above = _listing(db, trees, parent)
    entry = above.get(encode_name(name)) if above is not None else None
    trees[folder] = _tree(db, entry[1]) if entry is not None and entry[0] == "40000" else None
    return trees[folder]


def _tree(db: GitDB, oid: str) -> dict[bytes, tuple[str, str]]:
    kind, data = _read(db, oid)
    if kind != b"tree":
        raise Unsupported(f"{oid} is not a tree")
    return parse_tree(data, 20)


def _read(db: GitDB, oid: str) -> tuple[bytes, bytes]:
    stream = db.stream(bytes.fromhex(oid))
    return stream.type, stream.read()


def _common_dir(git_dir: Path) -> Path:
    """The folder holding refs and objects (a linked worktree's git dir points at it)."""
    common = git_dir / "commondir"
    if common.is_file():
        return (git_dir / common.read_text().strip()).resolve()
    return git_dir
