"""Small pure helpers of the git page store: input checks, commit text, and parsing git's output.

Nothing here runs git; :mod:`store.git_repo` and :mod:`store.git_store` do. Keeping the string and
tree work apart keeps the store's write algorithm readable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from store.errors import InvalidPath, StoreError

ABSENT = "absent"
"""The version of a path that does not exist at HEAD."""

_OID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?\Z")
_TRAILER_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MESSAGE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tab and newline are allowed in messages
_RECORD, _FIELD = "\x1e", "\x1f"
LOG_FORMAT = "%x1e%H%x1f%P%x1f%an <%ae>%x1f%aI%x1f%B%x1f%(trailers:only,unfold)%x1f"
"""``git log --format`` whose output :func:`parse_log` reads (use with ``-z --name-only``)."""


@dataclass(frozen=True)
class CommitInfo:
    """One commit as the store reports it.

    Attributes:
        id: Commit id.
        parents: Parent commit ids (empty for the first commit).
        author: ``Name <email>``.
        timestamp: Author date, timezone-aware.
        message: Commit message without its final trailer paragraph.
        trailers: ``Key: value`` trailers, values in order per key.
        paths: Paths the commit changed (when the query asked for them).
    """

    id: str
    parents: tuple[str, ...]
    author: str
    timestamp: datetime
    message: str
    trailers: dict[str, list[str]]
    paths: tuple[str, ...] = ()


def check_path(path: str) -> str:
    """Validate a repository-relative POSIX path.

    Args:
        path: Candidate path such as ``wiki/people/ada-lovelace.md``.

    Returns:
        The path unchanged.

    Raises:
        InvalidPath: Empty, absolute, with empty, ``.`` or ``..`` segments, a ``.git`` segment (any case,
            or the NTFS spellings ``.git.``, ``.git `` and ``git~1`` that git itself refuses to check
            out), a backslash, or a control character.
    """
    if not isinstance(path, str) or not path:
        raise InvalidPath(f"invalid path {path!r}: empty or not a string")
    if _CONTROL.search(path) or "\\" in path:
        raise InvalidPath(f"invalid path {path!r}: control character or backslash")
    if path.startswith("/"):
        raise InvalidPath(f"invalid path {path!r}: absolute")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidPath(f"invalid path {path!r}: empty, '.' or '..' segment")
        if segment.lower().rstrip(". ") in (".git", "git~1"):
            raise InvalidPath(f"invalid path {path!r}: names .git")
    return path


def check_rev(rev: str) -> str:
    """Validate a revision argument (commit id, branch, ``HEAD~2``) before it reaches a command line.

    Raises:
        StoreError: Empty, starting with ``-``, or holding whitespace or control characters.
    """
    if not isinstance(rev, str) or not rev or rev.startswith("-") or _CONTROL.search(rev) or " " in rev:
        raise StoreError(f"invalid revision {rev!r}")
    return rev


def check_version(path: str, version: str) -> str:
    """Validate an expected version: a blob id or :data:`ABSENT`.

    Raises:
        StoreError: Anything else.
    """
    if version != ABSENT and not (isinstance(version, str) and _OID.match(version)):
        raise StoreError(f"invalid expected version {version!r} for {path}")
    return version


def encode_name(text: str) -> bytes:
    """Bytes of a path as git stores it (names read from git that were not UTF-8 round-trip)."""
    return text.encode("utf-8", "surrogateescape")


def ancestors(path: str) -> list[str]:
    """The directories above ``path``: ``a/b/c.md`` -> ``["a", "a/b"]``."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def compose_message(message: str, trailers: Sequence[tuple[str, str]]) -> bytes:
    """Build a commit message with trailers in a final paragraph.

    Args:
        message: Subject and optional body.
        trailers: ``(key, value)`` pairs such as ``("Lore-Source", sha256)``.

    Returns:
        The UTF-8 message ending in a newline.

    Raises:
        ValueError: An empty message, a control character, or a malformed trailer.
    """
    body = message.strip()
    if not body or _MESSAGE_CONTROL.search(body):
        raise ValueError("commit message is empty or holds control characters")
    lines = []
    for key, value in trailers:
        value = str(value).strip()
        if not _TRAILER_KEY.match(key) or not value or _CONTROL.search(value):
            raise ValueError(f"malformed trailer {key!r}: {value!r}")
        lines.append(f"{key}: {value}")
    text = body + ("\n\n" + "\n".join(lines) if lines else "") + "\n"
    return text.encode("utf-8")


def parse_trailers(text: str) -> dict[str, list[str]]:
    """Parse git's ``%(trailers:only,unfold)`` output into key -> values."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def parse_log(raw: bytes) -> list[CommitInfo]:
    """Parse ``git log -z --name-only --format=LOG_FORMAT`` output."""
    commits = []
    for record in raw.decode("utf-8", "replace").split(_RECORD)[1:]:
        fields = record.split(_FIELD)
        if len(fields) < 7:
            raise StoreError(f"unexpected git log output: {record[:200]!r}")
        oid, parents, author, date, body, trailer_text, tail = fields[:7]
        trailers = parse_trailers(trailer_text)
        message = body.rstrip("\n")
        if trailers and "\n\n" in message:
            message = message.rsplit("\n\n", 1)[0]
        paths = tuple(p for p in tail.lstrip("\0\n").split("\0") if p)
        commits.append(
            CommitInfo(
                id=oid,
                parents=tuple(parents.split()),
                author=author,
                timestamp=datetime.fromisoformat(date),
                message=message,
                trailers=trailers,
                paths=paths,
            )
        )
    return commits


def parse_batch(out: bytes, verbs: Sequence[str]) -> list[tuple[str | None, str | None, bytes | None]]:
    """Parse ``git cat-file --batch-command`` answers to commands with the given ``verbs``.

    Args:
        out: The process's stdout.
        verbs: ``"info"`` or ``"contents"`` per command, in order.

    Returns:
        Per command ``(object id, type, content)``: ``(None, None, None)`` for a missing object, and
        content ``None`` for ``info`` commands.
    """
    answers: list[tuple[str | None, str | None, bytes | None]] = []
    pos = 0
    for verb in verbs:
        end = out.index(b"\n", pos)
        header = out[pos:end]
        pos = end + 1
        if header.endswith((b" missing", b" ambiguous")):
            answers.append((None, None, None))
            continue
        oid, kind, size = header.decode().split(" ")
        data = None
        if verb == "contents":
            data = out[pos : pos + int(size)]
            pos += int(size) + 1
        answers.append((oid, kind, data))
    return answers


Listing = dict[bytes, tuple[str, str]]
"""One tree's entries: name -> (mode, object id)."""


def parse_tree(data: bytes, oid_len: int) -> Listing:
    """Parse a raw tree object (``<mode> <name>\\0<binary id>`` repeated) into a listing."""
    entries: Listing = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        entries[data[space + 1 : nul]] = (data[pos:space].decode(), data[nul + 1 : nul + 1 + oid_len].hex())
        pos = nul + 1 + oid_len
    return entries


def mktree_input(entries: Listing) -> bytes:
    """One ``git mktree -z --batch`` tree: ``<mode> <type> <id>\\t<name>\\0`` lines and an empty one."""
    kinds = {"40000": "tree", "160000": "commit"}
    return b"".join(
        f"{mode} {kinds.get(mode, 'blob')} {oid}\t".encode() + name + b"\0"
        for name, (mode, oid) in entries.items()
    ) + b"\0"


def apply_changes(
    listings: dict[str, Listing], changes: Mapping[str, str | None], make_tree: Callable[[Listing], str]
) -> str:
    """Rebuild the trees touched by ``changes`` bottom-up and return the new root tree id.

    Args:
        listings: Current entries of the root (``""``) and of every directory above a changed path
            (empty for directories that do not exist).
        changes: path -> new blob id, or None to remove the path.
        make_tree: Writes one tree and returns its id (``git mktree``).

    Returns:
        The id of the new root tree. Directories left empty are dropped, as git does.
    """
    trees = {folder: dict(entries) for folder, entries in listings.items()}
    for path, blob in changes.items():
        folder, _, name = path.rpartition("/")
        if blob is None:
            trees[folder].pop(encode_name(name), None)
        else:
            trees[folder][encode_name(name)] = ("100644", blob)
    for folder in sorted((f for f in trees if f), key=lambda f: f.count("/"), reverse=True):
        parent, _, name = folder.rpartition("/")
        if trees[folder]:
            trees[parent][encode_name(name)] = ("40000", make_tree(trees[folder]))
        else:
            trees[parent].pop(encode_name(name), None)
    return make_tree(trees[""])


def effective_changes(
    changes: Mapping[str, bytes | None],
    blobs: Mapping[str, str],
    kinds: Mapping[str, str | None],
    versions: Mapping[str, str],
) -> dict[str, str | None]:
    """path -> blob id or None for ``changes``, checked against the tree at HEAD.

    Args:
        changes: The caller's changes.
        blobs: path -> blob id of the written contents.
        kinds: Object type at HEAD of each directory above a changed path (None if absent).
        versions: Blob id, other object type, or ABSENT at HEAD of each changed path.

    Returns:
        The changes to apply; deletions below a file are dropped (such a path cannot exist).

    Raises:
        InvalidPath: A changed path is a directory, or a written path lies below a file.
    """
    effective: dict[str, str | None] = {}
    for path, data in changes.items():
        if versions[path] == "tree":
            raise InvalidPath(f"{path} is a directory in the repository")
        blocked = [a for a in ancestors(path) if kinds[a] not in ("tree", None)]
        if blocked and data is not None:
            raise InvalidPath(f"{blocked[0]} is a file in the repository; cannot write {path}")
        if not blocked:  # deleting below a file is a no-op: the path cannot exist
            effective[path] = blobs[path] if data is not None else None
    return effective


def unchanged(listings: dict[str, Listing], path: str, blob: str | None) -> bool:
    """Whether ``path`` already holds ``blob`` as a regular file (or is already absent for None)."""
    folder, _, name = path.rpartition("/")
    entry = listings[folder].get(encode_name(name))
    return entry is None if blob is None else entry == ("100644", blob)
