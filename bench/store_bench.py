"""Concurrent writers against one git page store (``lore bench store``).

``writers`` real OS processes (``python -m bench.store_bench``, released together) each make
``writes`` writes. Every write appends one unique marker line to one of ``pages`` shared pages
through :meth:`GitStore.update`, whose ``build`` appends the line to the page it is given; a page
that moved runs ``build`` again, the way a renderer re-renders. Changes ready together share one
commit (group commit). A single writer is measured first, in the same run, on a fresh repository
(``2 × writes`` writes), and ``speedup`` is the many-writer rate over it. At the end the exact state
is checked: every marker is on its page exactly once, every write's ``Lore-Job`` trailer is in the
history exactly once, ``git fsck --strict`` is clean, history is linear, and the working tree matches
HEAD.

With ``remote=True`` the repository of record is a central bare repository served on loopback by
``git daemon``; the writers publish through one clone (one host) by pushing with the expected old
value, and the checks read the central repository.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.git_daemon import git_daemon, make_bare
from store.errors import PageConflict, StoreError
from store.git_store import GitStore, ReadResult

MAX_CONFLICT_RETRIES = 1000
"""A writer gives up a write after this many conflicts in a row (reported in ``errors``)."""
WRITER_TIMEOUT_S = 1800.0


def page_path(index: int) -> str:
    """Repository path of shared page ``index``."""
    return f"wiki/bench/page-{index}.md"


def marker(writer: int, write: int) -> str:
    """The unique line writer ``writer`` appends in its write number ``write``."""
    return f"marker w{writer:03d} n{write:04d}"


def _writer(root: Path, writer: int, writes: int, pages: int, remote: str | None) -> dict[str, Any]:
    """One writer's workload: ``writes`` appends through ``GitStore.update``."""
    stats: dict[str, Any] = {"writer": writer, "conflicts": 0, "rebases": 0, "changed": 0, "errors": []}
    store = GitStore(root, remote_url=remote)
    rng = random.Random(writer)
    try:
        for n in range(writes):
            path = page_path(rng.randrange(pages))
            line = marker(writer, n).encode() + b"\n"

            def build(current: Mapping[str, ReadResult], path: str = path, line: bytes = line) -> dict[str, bytes]:
                return {path: (current[path].content or b"") + line}

            try:
                result = store.update([path], build, f"bench: writer {writer} write {n}",
                                      [("Lore-Job", f"bench-{writer}-{n}")], tries=MAX_CONFLICT_RETRIES)
            except PageConflict:
                stats["conflicts"] += MAX_CONFLICT_RETRIES
                stats["errors"].append(f"writer {writer} write {n}: {MAX_CONFLICT_RETRIES} conflicts in a row")
                continue
            stats["conflicts"] += result.conflicts
            stats["rebases"] += result.rebases
            stats["changed"] += int(result.changed)
    except StoreError as exc:
        stats["errors"].append(f"writer {writer}: {type(exc).__name__}: {exc}")
    return stats


def _writer_process(argv: list[str]) -> None:
    """Entry point of one writer process: report ready, wait for "go" on stdin, write, print JSON."""
    root, writer, writes, pages = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    remote = argv[4] if len(argv) > 4 and argv[4] else None
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(_writer(root, writer, writes, pages, remote)), flush=True)


def _collect(proc: subprocess.Popen[str], writer: int) -> dict[str, Any]:
    out, err = proc.communicate(timeout=WRITER_TIMEOUT_S)
    try:
        return dict(json.loads(out))
    except ValueError:
        error = f"writer {writer} exited {proc.returncode}: {err.strip()[-500:]}"
        return {"writer": writer, "conflicts": 0, "rebases": 0, "changed": 0, "errors": [error]}


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)


def _verify(store: GitStore, record: Path, writers: int, writes: int, pages: int) -> dict[str, Any]:
    """Check the end state in the repository of record ``record``: markers, trailers, fsck, history."""
    found: Counter[str] = Counter()
    central = GitStore(record, refresh_worktree=False)
    for result in central.read_many(page_path(i) for i in range(pages)).values():
        found.update((result.content or b"").decode().splitlines())
    wanted = {marker(w, n) for w in range(writers) for n in range(writes)}
    missing = sum(1 for m in wanted if found[m] == 0)
    duplicated = sum(1 for m in wanted if found[m] > 1)
    unknown = sum(count for line, count in found.items() if line not in wanted)
    jobs = Counter(j for c in central.log() for j in c.trailers.get("Lore-Job", []))
    jobs_wanted = {f"bench-{w}-{n}" for w in range(writers) for n in range(writes)}
    fsck = _git(record, "fsck", "--strict", "--no-dangling", "--no-progress")
    fsck_text = "ok" if fsck.returncode == 0 and not fsck.stderr.strip() else (fsck.stdout + fsck.stderr).strip()
    parents = _git(record, "rev-list", "--parents", central.ref).stdout.splitlines()
    first_parent = int(_git(record, "rev-list", "--first-parent", "--count", central.ref).stdout)
    store.sync()
    status = _git(store.root, "status", "--porcelain", "--untracked-files=all").stdout
    return {
        "lost": missing + duplicated + unknown,
        "missing": missing,
        "duplicated": duplicated,
        "unknown_lines": unknown,
        "jobs_not_once": sum(1 for j in jobs_wanted if jobs[j] != 1),
        "fsck": fsck_text,
        "history_commits": len(parents),
        "linear": all(len(line.split()) <= 2 for line in parents) and first_parent == len(parents),
        "clone_converged": store.head() == central.head(),
        "worktree_clean": status.strip() == "",
    }


def _run(folder: Path, writers: int, writes: int, pages: int, remote: bool) -> dict[str, Any]:
    """One measured run in ``folder`` (which must not exist or be empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    repo = folder / "wiki"
    with contextlib.ExitStack() as stack:
        url, record = None, repo
        if remote:
            record = make_bare(folder / "served" / "central.git")
            url = stack.enter_context(git_daemon(folder / "served")) + "/central.git"
        store = GitStore(repo, remote_url=url)
        store.init()
        initial = len(store.log())
        command = [sys.executable, "-m", "bench.store_bench"]
        procs = [
            subprocess.Popen(
                [*command, str(repo), str(w), str(writes), str(pages), url or ""],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in range(writers)
        ]
        for proc in procs:  # every writer has started and imported everything
            assert proc.stdout is not None
            proc.stdout.readline()
        began = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        stats = [_collect(proc, w) for w, proc in enumerate(procs)]
        seconds = time.perf_counter() - began
        figures: dict[str, Any] = {
            "conflicts": sum(s["conflicts"] for s in stats),
            "rebases": sum(s["rebases"] for s in stats),
            "seconds": round(seconds, 3),
            "errors": [e for s in stats for e in s["errors"]],
        }
        figures.update(_verify(store, record, writers, writes, pages))
        figures["commits"] = figures["history_commits"] - initial
        figures["commits_per_s"] = round(figures["commits"] / seconds, 2) if seconds > 0 else 0.0
        figures["writes_per_s"] = round(writers * writes / seconds, 2) if seconds > 0 else 0.0
        return figures


def run_store_bench(
    root: Path | None = None, writers: int = 16, writes: int = 25, pages: int = 4, *, remote: bool = False,
    baseline: bool = True,
) -> dict[str, Any]:
    """Measure one writer, then ``writers`` concurrent writers, and check both end states.

    Args:
        root: Folder for the repositories (created). Default: a temporary folder removed afterwards.
        writers: Writer processes of the main run.
        writes: Writes per writer.
        pages: Shared pages the writers append to.
        remote: Publish to a central bare repository served by ``git daemon`` on loopback.
        baseline: Measure the single writer first (``2 × writes`` writes on a fresh repository).

    Returns:
        ``writers``, ``writes`` (per writer), ``pages``, ``remote``, ``lost`` (markers missing or
        duplicated, plus unknown lines), ``jobs_not_once``, ``fsck`` ("ok" or git's text),
        ``conflicts`` (builds run again because a page moved), ``rebases`` (batches rebuilt on a
        moved head), ``commits`` (made by the writers), ``history_commits``, ``linear``,
        ``clone_converged``, ``worktree_clean``, ``seconds``, ``commits_per_s``, ``writes_per_s``,
        ``writes_per_commit``, ``single_writer_writes_per_s``, ``speedup``, ``errors``.
    """
    with tempfile.TemporaryDirectory(prefix="lore-store-bench-") as tmp:
        base = Path(root) if root is not None else Path(tmp)
        single = _run(base / "single", 1, 2 * writes, pages, remote) if baseline else None
        figures = _run(base / "many", writers, writes, pages, remote)
        figures = {"writers": writers, "writes": writes, "pages": pages, "remote": remote, **figures}
        figures["writes_per_commit"] = round(writers * writes / max(1, figures["commits"]), 2)
        if single is not None:
            figures["single_writer_writes_per_s"] = single["writes_per_s"]
            figures["single_writer_lost"] = single["lost"]
            figures["speedup"] = round(figures["writes_per_s"] / single["writes_per_s"], 2)
            figures["errors"] = single["errors"] + figures["errors"]
        return figures


if __name__ == "__main__":
    _writer_process(sys.argv[1:])
