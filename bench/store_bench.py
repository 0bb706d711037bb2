"""Concurrent writers against one git page store (``lore bench store``).

``writers`` real OS processes (``python -m bench.store_bench``, released together) each make
``writes`` writes. Every write appends one unique marker line to one of ``pages`` shared pages
through :meth:`GitStore.write` with the version it read, and on :class:`PageConflict` re-reads and
tries again, the way a renderer re-renders. At the end the exact state is checked: every marker is on
its page exactly once, ``git fsck --strict`` is clean, history is linear with one commit per write,
and the working tree matches HEAD.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from store.errors import PageConflict, StoreError
from store.git_store import GitStore

MAX_CONFLICT_RETRIES = 1000
"""A writer gives up a write after this many conflicts in a row (reported in ``errors``)."""
WRITER_TIMEOUT_S = 1800.0


def page_path(index: int) -> str:
    """Repository path of shared page ``index``."""
    return f"wiki/bench/page-{index}.md"


def marker(writer: int, write: int) -> str:
    """The unique line writer ``writer`` appends in its write number ``write``."""
    return f"marker w{writer:03d} n{write:04d}"


def _writer(root: Path, writer: int, writes: int, pages: int) -> dict[str, Any]:
    """One writer's workload: ``writes`` appends with re-read-and-retry on conflict."""
    stats: dict[str, Any] = {"writer": writer, "conflicts": 0, "rebases": 0, "commits": 0, "errors": []}
    store = GitStore(root)
    rng = random.Random(writer)
    try:
        for n in range(writes):
            path = page_path(rng.randrange(pages))
            line = marker(writer, n).encode() + b"\n"
            for _ in range(MAX_CONFLICT_RETRIES):
                current = store.read(path)
                body = (current.content or b"") + line
                try:
                    result = store.write(
                        {path: body},
                        {path: current.version},
                        f"bench: writer {writer} write {n}",
                        [("Lore-Job", f"bench-{writer}-{n}")],
                    )
                except PageConflict:
                    stats["conflicts"] += 1
                    continue
                stats["rebases"] += result.rebases
                stats["commits"] += int(result.changed)
                break
            else:
                stats["errors"].append(f"writer {writer} write {n}: {MAX_CONFLICT_RETRIES} conflicts in a row")
    except StoreError as exc:
        stats["errors"].append(f"writer {writer}: {type(exc).__name__}: {exc}")
    return stats


def _writer_process(argv: list[str]) -> None:
    """Entry point of one writer process: report ready, wait for "go" on stdin, write, print JSON."""
    root, writer, writes, pages = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(_writer(root, writer, writes, pages)), flush=True)


def _collect(proc: subprocess.Popen[str], writer: int) -> dict[str, Any]:
    out, err = proc.communicate(timeout=WRITER_TIMEOUT_S)
    try:
        return dict(json.loads(out))
    except ValueError:
        error = f"writer {writer} exited {proc.returncode}: {err.strip()[-500:]}"
        return {"writer": writer, "conflicts": 0, "rebases": 0, "commits": 0, "errors": [error]}


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)


def _verify(store: GitStore, writers: int, writes: int, pages: int) -> dict[str, Any]:
    """Check the end state: markers, fsck, linear history, clean working tree."""
    found: Counter[str] = Counter()
    for result in store.read_many(page_path(i) for i in range(pages)).values():
        found.update((result.content or b"").decode().splitlines())
    wanted = {marker(w, n) for w in range(writers) for n in range(writes)}
    missing = sum(1 for m in wanted if found[m] == 0)
    duplicated = sum(1 for m in wanted if found[m] > 1)
    unknown = sum(count for line, count in found.items() if line not in wanted)
    fsck = _git(store.root, "fsck", "--strict", "--no-dangling", "--no-progress")
    fsck_text = "ok" if fsck.returncode == 0 and not fsck.stderr.strip() else (fsck.stdout + fsck.stderr).strip()
    parents = _git(store.root, "rev-list", "--parents", store.ref).stdout.splitlines()
    first_parent = int(_git(store.root, "rev-list", "--first-parent", "--count", store.ref).stdout)
    status = _git(store.root, "status", "--porcelain", "--untracked-files=all").stdout
    return {
        "lost": missing + duplicated + unknown,
        "missing": missing,
        "duplicated": duplicated,
        "unknown_lines": unknown,
        "fsck": fsck_text,
        "history_commits": len(parents),
        "linear": all(len(line.split()) <= 2 for line in parents) and first_parent == len(parents),
        "worktree_clean": status.strip() == "",
    }


def run_store_bench(
    root: Path | None = None, writers: int = 16, writes: int = 25, pages: int = 4
) -> dict[str, Any]:
    """Run the concurrent-writer workload and check its end state.

    Args:
        root: Folder for the repository (created; must not hold another repository). Default: a
            temporary folder removed afterwards.
        writers: Writer processes.
        writes: Writes per writer.
        pages: Shared pages the writers append to.

    Returns:
        Figures and checks: ``writers``, ``writes``, ``pages``, ``lost`` (markers missing or
        duplicated, plus unknown lines), ``conflicts``, ``rebases``, ``commits`` (made by writers),
        ``history_commits`` (including the initial one), ``linear``, ``fsck`` ("ok" or git's text),
        ``worktree_clean``, ``seconds``, ``commits_per_s``, ``errors``.
    """
    with tempfile.TemporaryDirectory(prefix="lore-store-bench-") as tmp:
        repo = Path(root) if root is not None else Path(tmp) / "wiki"
        store = GitStore(repo)
        store.init()
        command = [sys.executable, "-m", "bench.store_bench"]
        procs = [
            subprocess.Popen(
                [*command, str(repo), str(w), str(writes), str(pages)],
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
        commits = sum(s["commits"] for s in stats)
        figures: dict[str, Any] = {
            "writers": writers,
            "writes": writes,
            "pages": pages,
            "conflicts": sum(s["conflicts"] for s in stats),
            "rebases": sum(s["rebases"] for s in stats),
            "commits": commits,
            "seconds": round(seconds, 3),
            "commits_per_s": round(commits / seconds, 2) if seconds > 0 else 0.0,
            "errors": [e for s in stats for e in s["errors"]],
        }
        figures.update(_verify(store, writers, writes, pages))
        return figures


if __name__ == "__main__":
    _writer_process(sys.argv[1:])
