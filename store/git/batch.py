"""One batch of queued changes becomes one tree and one commit on top of the branch.

The leader hashes every change's new contents with one ``hash-object -w --stdin-paths``, reads HEAD's
trees above all changed paths and the versions of all named paths with one ``cat-file
--batch-command``, and walks the changes in queue order. A change whose expected version no longer
holds (at HEAD, or after an earlier change of the same batch) gets a conflict back; a change that
clashes with a file or folder gets ``InvalidPath``; the rest are applied in order. One
``mktree --batch`` writes the trees, one ``commit-tree`` the commit, and ``publish(new, old)`` moves
the ref (a local ``update-ref`` or a push with the expected old value). When the branch moved in
between, the whole batch is rebuilt on the new HEAD, each change checked again.

The commit's message is the change's own when it is alone; with several it is
``Group commit of N changes`` with one line per change, and every change's trailers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from store.errors import InvalidPath, StoreLocked
from store.faults import crash_point
from store.git.group_commit import Change, Outcome
from store.git_plumbing import ABSENT, ancestors, apply_changes, compose_message, parse_tree
from store.git_repo import GitRepo

GROUP_SUBJECT = "Group commit of {n} changes"


def batch_message(batch: Sequence[Change]) -> bytes:
    """The commit message of the changes that landed together.

    Alone, a change keeps its own message and trailers. Several get ``Group commit of N changes``,
    then one entry per change (``- <subject>`` and its trailers indented below it, which
    :func:`changes_of` reads back), then every change's trailers as the commit's trailers, so
    ``git log --grep`` and trailer searches still find each source's commit.
    """
    if len(batch) == 1:
        return compose_message(batch[0].message, batch[0].trailers)
    entries = []
    for change in batch:
        entries.append(f"- {change.message.strip().splitlines()[0]}")
        entries += [f"  {key}: {str(value).strip()}" for key, value in change.trailers]
    trailers = list(dict.fromkeys(t for c in batch for t in c.trailers))
    return compose_message(GROUP_SUBJECT.format(n=len(batch)) + "\n\n" + "\n".join(entries), trailers)


def changes_of(message: str, trailers: Mapping[str, Sequence[str]]) -> list[tuple[str, dict[str, list[str]]]]:
    """The changes a commit holds as ``(subject, trailers)``: one for a plain commit, N for a group.

    Args:
        message: The commit message without its trailer paragraph (as :class:`CommitInfo` has it).
        trailers: The commit's trailers.
    """
    subject, _, body = message.partition("\n")
    if not (subject.startswith("Group commit of ") and subject.endswith(" changes")):
        return [(subject, {k: list(v) for k, v in trailers.items()})]
    found: list[tuple[str, dict[str, list[str]]]] = []
    for line in body.splitlines():
        if line.startswith("- "):
            found.append((line[2:], {}))
        elif line.startswith("  ") and found and ": " in line:
            key, _, value = line.strip().partition(": ")
            found[-1][1].setdefault(key, []).append(value)
    return found


def hash_files(repo: GitRepo, files: Sequence[Path]) -> list[str]:
    """Write a blob for each file with one ``hash-object`` process; their ids in order."""
    if not files:
        return []
    listing = "".join(f"{f}\n" for f in files).encode()
    return repo.run("hash-object", "-w", "--no-filters", "--stdin-paths", input=listing).stdout.decode().split()


def publish_batch(
    repo: GitRepo,
    ref: str,
    batch: Sequence[Change],
    journal: Callable[[str, Mapping[str, Outcome]], None],
    publish: Callable[[str, str | None], bool],
    max_rebases: int,
) -> dict[str, Outcome]:
    """Publish ``batch`` as one commit on ``ref``; every change gets its outcome.

    Args:
        repo: The repository.
        ref: The branch ref, e.g. ``refs/heads/main``.
        batch: Queued changes in order.
        journal: Called with the commit and the outcomes just before the ref moves.
        publish: ``publish(new, old)`` moves the ref; False when it had moved (rebuild and retry).
        max_rebases: How often the batch is rebuilt on a moved ref before every change fails with
            StoreLocked.

    Returns:
        Change id -> outcome.
    """
    files = [f for c in batch for f in c.changes.values() if f is not None]
    blob_of = dict(zip(files, hash_files(repo, files), strict=True))
    paths = sorted({p for c in batch for p in (*c.changes, *c.expected)})
    dirs = sorted({a for c in batch for p in c.changes for a in ancestors(p)})
    queries = [("contents", "^{tree}")] + [("contents", ":" + d) for d in dirs]
    queries += [("info", ":" + p) for p in paths]
    rebases = 0
    while True:
        head, answers = repo.probe(ref, queries)
        trees, infos = answers[: len(dirs) + 1], answers[len(dirs) + 1 :]
        kinds: dict[str, str | None] = dict(zip(["", *dirs], (kind for _, kind, _ in trees), strict=True))
        versions = {p: (oid if kind == "blob" else kind) or ABSENT for p, (oid, kind, _) in
                    zip(paths, infos, strict=True)}
        outcomes: dict[str, Outcome] = {}
        merged: dict[str, str | None] = {}
        accepted: list[Change] = []
        for change in batch:
            moved = [p for p, v in change.expected.items() if versions[p] != v]
            if moved:
                outcomes[change.id] = Outcome(conflict=sorted(moved), rebases=rebases)
                continue
            try:
                effective = _effective(change, blob_of, kinds, versions, merged)
            except InvalidPath as exc:
                outcomes[change.id] = Outcome(error=("InvalidPath", str(exc)), rebases=rebases)
                continue
            for path, blob in effective.items():
                merged[path] = blob
                versions[path] = blob if blob is not None else ABSENT
            accepted.append(change)
            outcomes[change.id] = Outcome(blobs={p: (blob_of[f] if f is not None else None)
                                                 for p, f in change.changes.items()}, rebases=rebases)
        if not accepted:
            return outcomes
        oid_len = len(head) // 2 if head else 20
        needed = {"", *(a for p in merged for a in ancestors(p))}
        listings = {d: parse_tree(data, oid_len) if kind == "tree" and data is not None else {}
                    for d, (_, kind, data) in zip(["", *dirs], trees, strict=True) if d in needed}
        with repo.tree_maker() as make_tree:
            tree = apply_changes(listings, merged, make_tree)
        if head is not None and tree == trees[0][0]:
            for change in accepted:
                outcomes[change.id].commit = outcomes[change.id].parent = head
                outcomes[change.id].batch = 0
            return outcomes
        parent = ["-p", head] if head else []
        commit = repo.out("commit-tree", "--no-gpg-sign", tree, *parent, input=batch_message(accepted))
        for change in accepted:
            outcome = outcomes[change.id]
            outcome.commit, outcome.parent, outcome.changed, outcome.batch = commit, head, True, len(accepted)
        journal(commit, outcomes)
        crash_point("before_ref")  # crash tests: objects written, branch not moved
        if publish(commit, head):
            crash_point("after_ref")  # crash tests: branch moved, nothing after it done
            return outcomes
        rebases += 1
        if rebases > max_rebases:
            detail = f"HEAD moved {rebases} times during one write; giving up"
            return {c.id: Outcome(error=("StoreLocked", detail), rebases=rebases) for c in batch}


def _effective(
    change: Change,
    blob_of: Mapping[Path, str],
    kinds: Mapping[str, str | None],
    versions: Mapping[str, str],
    merged: Mapping[str, str | None],
) -> dict[str, str | None]:
    """The change as path -> blob id or None, checked against HEAD and the batch so far.

    Raises:
        InvalidPath: A changed path is a directory, or a written path lies below a file.
    """
    effective: dict[str, str | None] = {}
    for path, source in change.changes.items():
        below = source is not None and any(m.startswith(path + "/") and b is not None for m, b in merged.items())
        if versions[path] == "tree" or below:
            raise InvalidPath(f"{path} is a directory in the repository")
        above = ancestors(path)
        blocked = [a for a in above if kinds[a] not in ("tree", None) and merged.get(a, "file") is not None]
        blocked += [a for a in above if merged.get(a) is not None]
        if blocked and source is not None:
            raise InvalidPath(f"{blocked[0]} is a file in the repository; cannot write {path}")
        if not blocked:  # deleting below a file is a no-op: the path cannot exist
            effective[path] = blob_of[source] if source is not None else None
    return effective


__all__ = ["GROUP_SUBJECT", "StoreLocked", "batch_message", "changes_of", "hash_files", "publish_batch"]
