"""The end state of a chaos soak (``bench.chaos_bench``), read from the ledger (SQLite) and git.

Read-only: the database is opened with ``mode=ro`` and git is only asked to show and check.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

SHOWN_ON_PAGE = ("active", "disputed", "duplicate", "superseded")  # claims that carry a footnote on their page


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` from the SQLite file ``db``, opened read-only."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as con:
        return list(con.execute(sql, args))


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


class Progress:
    """The longest time the jobs table had open jobs while none finished (a wedged worker shows here)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.last: tuple[int, float] = (-1, time.monotonic())
        self.longest = 0.0

    def sample(self) -> None:
        """Look at the jobs table once (call about once a second)."""
        with contextlib.suppress(sqlite3.Error):
            states = dict(query(self.db, "SELECT state, count(*) FROM jobs GROUP BY state"))
            done, now = int(states.get("done", 0)), time.monotonic()
            open_jobs = sum(int(states.get(k, 0)) for k in ("queued", "running", "failed"))
            if done != self.last[0] or not open_jobs:
                self.last = (done, now)
            self.longest = max(self.longest, now - self.last[1])


def model_call_figures(db: Path) -> dict[str, Any]:
    """First attempts, retries after a transient failure, breaker refusals and outcomes, from ``model_calls``.

    A logical call's rows share (job, stage, prompt hash); a row with ``attempt > 1`` right after a
    ``transient`` row of the same call is a retry (a repair call follows an ``invalid`` row instead).
    """
    rows = query(db, "SELECT job_id, stage, prompt_hash, attempt, outcome FROM model_calls ORDER BY id")
    last: dict[tuple[Any, ...], str] = {}
    first = retries = refused = 0
    outcomes: Counter[str] = Counter()
    for job_id, stage, prompt_hash, attempt, outcome in rows:
        outcomes[outcome] += 1
        key = (job_id, stage, prompt_hash)
        if outcome == "breaker_open":
            refused += 1
        elif attempt == 1:
            first += 1
        elif attempt > 1 and last.get(key) == "transient":
            retries += 1
        last[key] = outcome
    return {"model_calls": len(rows), "model_outcomes": dict(outcomes), "first_attempts": first,
            "retries": retries, "breaker_refusals": refused}


def audit(data: Path, dropped: dict[str, str]) -> dict[str, Any]:
    """The end state of the soak's data folder; ``dropped`` maps each document's sha256 to its file name.

    Returns:
        ``sources`` (dropped), ``ingested``, ``done``, ``failed``, ``applied_once`` (done, source page
        added in exactly one commit and present at HEAD, every claim's footnote on its entity page, no
        claim stored twice), ``lost`` (neither done nor failed), ``duplicates`` (claims stored twice plus
        source pages added more than once), ``duplicate_entities`` (same type and name, informative:
        the resolver may split same-named things on purpose), ``claims_not_on_pages``, ``fsck``, ``jobs``.
    """
    db, repo = data / "lore.db", data / "wiki"
    sources = {sid: (status, slug) for sid, status, slug in query(db, "SELECT id, status, slug FROM sources")}
    done = [s for s in dropped if sources.get(s, ("",))[0] == "done"]
    failed = [s for s in dropped if sources.get(s, ("",))[0] == "failed"]
    dup_claims = Counter(dict(query(
        db, "SELECT source_id, count(*) - 1 FROM claims GROUP BY entity_id, source_id, text HAVING count(*) > 1")))
    dup_entities = query(db, "SELECT count(*) - 1 FROM entities GROUP BY type, norm_name HAVING count(*) > 1")
    added = Counter(line for line in _git(repo, "log", "--diff-filter=A", "--name-only", "--format=", "main")
                    .stdout.splitlines() if line.startswith("wiki/sources/"))
    head = set(_git(repo, "ls-tree", "-r", "--name-only", "main").stdout.splitlines())
    pages: dict[str, str] = {}
    missing: Counter[str] = Counter()
    marks = ",".join("?" * len(SHOWN_ON_PAGE))
    claims = query(db, "SELECT c.id, c.source_id, e.type, e.slug FROM claims c JOIN entities e "
                       f"ON e.id = c.entity_id WHERE c.status IN ({marks})", *SHOWN_ON_PAGE)
    for cid, sid, etype, slug in claims:
        path = f"wiki/{etype}/{slug}.md"
        if path not in pages:
            pages[path] = _git(repo, "show", f"main:{path}").stdout
        if f"[^{cid}]" not in pages[path]:
            missing[sid] += 1

    def page(s: str) -> str:
        return f"wiki/sources/{sources[s][1]}.md"

    applied_once = [s for s in done if added[page(s)] == 1 and page(s) in head and not missing[s] and not dup_claims[s]]
    fsck = _git(repo, "fsck", "--strict", "--no-dangling", "--no-progress")
    return {
        "sources": len(dropped),
        "ingested": sum(1 for s in dropped if s in sources),
        "done": len(done),
        "failed": len(failed),
        "applied_once": len(applied_once),
        "lost": len(dropped) - len(done) - len(failed),
        "lost_files": sorted(dropped[s] for s in dropped if s not in done and s not in failed),
        "duplicates": sum(dup_claims.values()) + sum(n - 1 for n in added.values() if n > 1),
        "duplicate_entities": sum(n for (n,) in dup_entities),
        "claims_not_on_pages": sum(missing.values()),
        "fsck": "ok" if fsck.returncode == 0 and not fsck.stderr.strip() else (fsck.stdout + fsck.stderr).strip(),
        "jobs": dict(query(db, "SELECT state, count(*) FROM jobs GROUP BY state")),
    }
