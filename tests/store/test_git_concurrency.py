"""Sixteen real writer processes against one store: nothing lost, nothing doubled, history linear.

Writers publish through ``GitStore.update`` and the group commit, so several writes share a commit;
the checks are per write (its marker on the page once, its ``Lore-Job`` trailer in history once).

The workload lives in ``bench/store_bench.py`` (also ``lore bench store``); this test checks its exact
end state and never its speed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.store_bench import marker, page_path, run_store_bench
from store.git_store import GitStore

WRITERS, WRITES, PAGES = 16, 25, 4


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    figures = run_store_bench(tmp_path, writers=WRITERS, writes=WRITES, pages=PAGES, baseline=False)
    repo = tmp_path / "many" / "wiki"

    assert figures["errors"] == []
    assert figures["lost"] == 0
    assert figures["jobs_not_once"] == 0
    assert figures["fsck"] == "ok"
    assert figures["linear"] is True
    assert figures["history_commits"] == figures["commits"] + 1  # plus the initial commit
    assert figures["commits"] < WRITERS * WRITES  # writes ready together shared commits
    assert figures["worktree_clean"] is True

    # Independent check of the end state, straight from git rather than from the bench's own counting.
    store = GitStore(repo)
    lines: list[str] = []
    for index in range(PAGES):
        content = store.read(page_path(index)).content or b""
        lines += content.decode().splitlines()
    assert sorted(lines) == sorted(marker(w, n) for w in range(WRITERS) for n in range(WRITES))
    parents = subprocess.run(
        ["git", "rev-list", "--parents", "main"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(parents) == figures["commits"] + 1
    assert all(len(line.split()) <= 2 for line in parents)
    jobs = [job for c in store.log()[:-1] for job in c.trailers.get("Lore-Job", [])]
    assert sorted(jobs) == sorted(f"bench-{w}-{n}" for w in range(WRITERS) for n in range(WRITES))
