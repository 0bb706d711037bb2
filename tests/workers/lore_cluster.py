"""A small harness for crash tests: Lore's real processes on one data folder, and the end-state checks.

:class:`LoreCluster` sets the ``LORE_*`` environment for a test, starts ``lore`` CLI processes (each in
its own session, so a test can kill a whole process group), reads the ledger with plain ``sqlite3``,
and :func:`check_consistent` asserts what must hold after any crash once the work has finished: every
source applied exactly once (ingest, source page and render commits against the ledger), no claim
twice, the ledger reconciled with HEAD, ``git fsck --strict`` clean, no lock file left and the next
write going through.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lore.config import Settings, load_settings
from lore.wiring import Wiring, migrate
from store.git.batch import changes_of
from store.git_store import ABSENT, GitStore
from store.jobs import due_jobs
from synth.service import run_job
from wiki.page import parse_page

SHOWN_OR_HISTORY = ("active", "disputed", "duplicate", "superseded")


def hellman_docs(count: int) -> dict[str, bytes]:
    """Short incident notes about one system, none naming it in a sentence.

    The fake model then files every sentence of a note as a claim about the heading's entity (three
    per note), so each render of that entity composes a summary and every source touches one page.
    """
    docs = {}
    for i in range(1, count + 1):
        docs[f"incident-{i:02d}.md"] = (
            f"# Hellman Cluster\n\n"
            f"It lost {i + 2} worker nodes during the night of March {i}, 2024.\n"
            f"Engineers restored service within {10 * i} minutes of the first page.\n"
            f"Payments were unavailable for {i * 7} minutes while it was down.\n"
        ).encode()
    return docs


class LoreCluster:
    """Lore processes sharing one data folder under ``tmp_path``.

    Args:
        tmp_path: the test's folder (working directory of every process).
        monkeypatch: replaces the test process's ``LORE_*`` environment.
        env: ``LORE_*`` settings for every process (data and ingest folders are added).
    """

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
        self.root = tmp_path
        self.data = tmp_path / "data"
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        (tmp_path / "ingest").mkdir()
        self.env = {"LORE_PATHS__DATA_DIR": str(self.data), "LORE_PATHS__INGEST_DIR": str(tmp_path / "ingest"),
                    **env}
        for key in [k for k in os.environ if k.startswith("LORE_")]:
            monkeypatch.delenv(key)
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        self.settings: Settings = load_settings()
        migrate(self.settings)
        self.db = self.data / "lore.db"
        self.repo = self.data / "wiki"
        self.procs: list[subprocess.Popen[bytes]] = []
        self._wiring: Wiring | None = None

    # --- processes ------------------------------------------------------------------------------

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``python -m lore.cli <args>`` in its own session; output goes to ``logs/<name>.log``."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "lore.cli", *args], cwd=self.root, env={**os.environ, **(env or {})},
            stdout=(self.logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str, log: str) -> None:
        """Poll ``predicate`` until true; fail with the tail of ``logs/<log>.log`` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.3)
        pytest.fail(f"timed out waiting for {what}\n{self.log(log)}")

    def kill_group(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process's whole group (main process, pool children, git children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the process's group (a warm shutdown) and wait; SIGKILL it if that takes too long."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill_group(proc)

    def stop_all(self) -> None:
        if self._wiring is not None:
            self._wiring.close()
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill_group(proc)

    # --- ledger and repository ------------------------------------------------------------------

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db, timeout=30)) as con:
            return list(con.execute(sql, args))

    @property
    def wiring(self) -> Wiring:
        """This test process's own wiring (no faults armed), built once."""
        if self._wiring is None:
            self._wiring = Wiring(self.settings)
        return self._wiring

    def ingest(self, docs: dict[str, bytes]) -> list[str]:
        """Write ``docs`` into a folder and take them in through the intake service; returns source ids."""
        folder = self.root / "docs"
        folder.mkdir(exist_ok=True)
        ids = []
        for name, data in docs.items():
            (folder / name).write_bytes(data)
            result = self.wiring.ingest_path(folder / name, root=folder)
            assert result.status == "new", result
            ids.append(str(result.source_id))
        return ids

    def run_inline(self, kinds: tuple[str, ...]) -> None:
        """Run the due jobs of ``kinds`` in this process, as ``lore ingest --inline`` would (test set-up).

        Their follow-ups are dispatched to the broker like a worker's; the queue messages of the jobs
        run here are skipped by whichever worker receives them (the jobs table says they are done).
        """
        if not kinds:
            return
        deps = self.wiring.synth_deps()
        while True:
            with deps.session_factory() as session:
                due = [job.id for job in due_jobs(session, kinds=kinds)]
            if not due:
                return
            for job_id in due:
                assert run_job(deps, job_id) in ("done", "skipped"), job_id

    def finished(self, sources: int) -> bool:
        """Every source is done and every job is done (failed sources fail the test at once)."""
        states = dict(self.rows("SELECT status, count(*) FROM sources GROUP BY status"))
        assert "failed" not in states, self.rows("SELECT origin, error FROM sources WHERE status = 'failed'")
        assert self.rows("SELECT id, kind, last_error FROM jobs WHERE state = 'dead'") == []
        open_jobs = self.rows("SELECT count(*) FROM jobs WHERE state != 'done'")[0][0]
        return states.get("done") == sources and open_jobs == 0

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.repo), *args], check=True, capture_output=True,
                              text=True).stdout

    def commits(self) -> list[tuple[str, str, dict[str, list[str]]]]:
        """``(id, subject, trailers)`` of every change on the branch, newest first.

        A group commit (several changes published together) yields one entry per change it holds.
        """
        return [(info.id, subject, trailers) for info in GitStore(self.repo, refresh_worktree=False).log()
                for subject, trailers in changes_of(info.message, info.trailers)]


def check_consistent(cluster: LoreCluster, source_ids: list[str]) -> None:
    """Assert the end state every crash must converge to, once all work has finished."""
    c = cluster
    known = set(source_ids)
    assert {sid for (sid,) in c.rows("SELECT id FROM sources")} == known
    assert c.rows("SELECT count(*) FROM sources WHERE status != 'done'")[0][0] == 0
    assert c.rows("SELECT id, kind, state FROM jobs WHERE state != 'done'") == []
    # No claim twice: not per key (the schema forbids that) and not per text either.
    assert c.rows(
        "SELECT source_id, entity_id, text, count(*) FROM claims GROUP BY 1, 2, 3 HAVING count(*) > 1"
    ) == []

    # Every source applied exactly once: one raw commit and one source-page commit each, and no
    # revision of an entity page published twice; every trailer names a source the ledger knows.
    commits = c.commits()
    for _commit, _subject, trailers in commits:
        assert set(trailers.get("Lore-Source", [])) <= known, trailers
    for sid in source_ids:
        ingests = [s for _, s, t in commits if s.startswith("Ingest ") and t.get("Lore-Source") == [sid]]
        pages = [s for _, s, t in commits if s.startswith("Source page ") and sid in t.get("Lore-Source", [])]
        assert len(ingests) == 1, (sid, ingests)
        assert len(pages) == 1, (sid, pages)
    renders = Counter(s for _, s, _ in commits if s.startswith("Render "))
    assert renders, "no entity page was rendered"
    assert [s for s, n in renders.items() if n > 1] == [], "a revision was published twice"

    # The ledger is reconciled with HEAD: every page row's blob is the blob at HEAD; an entity page's
    # recorded commit is in HEAD's history and holds that blob; pages are rendered at the latest revision.
    store = GitStore(c.repo, refresh_worktree=False)
    head = store.head()
    assert head is not None
    pages = c.rows("SELECT path, kind, entity_id, blob_id, commit_id, rendered_revision FROM pages")
    at_head = store.read_many([p[0] for p in pages])
    for path, kind, entity_id, blob_id, commit_id, rendered in pages:
        version = at_head[path].version
        assert (None if version == ABSENT else version) == blob_id, (path, blob_id, version)
        if kind != "entity" or blob_id is None:
            continue
        revision, entity_rendered = c.rows("SELECT revision, rendered_revision FROM entities WHERE id = ?",
                                           entity_id)[0]
        assert rendered == revision == entity_rendered, (path, rendered, revision, entity_rendered)
        ancestry = subprocess.run(["git", "-C", str(c.repo), "merge-base", "--is-ancestor", commit_id, head])
        assert ancestry.returncode == 0, (path, commit_id)
        assert c.git("rev-parse", f"{commit_id}:{path}").strip() == blob_id
        content = at_head[path].content
        assert content is not None
        meta = parse_page(content.decode()).meta
        assert meta["lore_revision"] == revision
        # The commit that last wrote the page names exactly the sources of the claims it shows.
        last = c.git("log", "-1", "--format=%H", "--", path).strip()
        trailers = next(t for commit, _, t in commits if commit == last)
        shown = {sid for (sid,) in c.rows(
            f"SELECT DISTINCT source_id FROM claims WHERE entity_id = ? AND status IN {SHOWN_OR_HISTORY}", entity_id)}
        assert set(trailers.get("Lore-Source", [])) == shown, (path, last)
    for sid in source_ids:
        assert any(sid in t.get("Lore-Source", []) for _, s, t in commits if s.startswith("Render ")), sid

    # A clean repository: fsck, no lock file left behind, and the next write goes through.
    c.git("fsck", "--strict")
    git_dir = c.repo / ".git"
    assert sorted(str(p.relative_to(git_dir)) for p in git_dir.rglob("*.lock")) == []
    note = f"notes/check-{head[:12]}.md"
    body = hashlib.sha256(head.encode()).hexdigest().encode()
    written = GitStore(c.repo).write({note: body}, {note: ABSENT}, "Check that the next write succeeds")
    assert written.changed
    assert c.git("status", "--porcelain") == ""
