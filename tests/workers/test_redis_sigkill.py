"""A worker killed with SIGKILL in the middle of a task loses nothing (real Redis, real processes).

Twenty sources are enqueued on a real Redis (append-only file, noeviction). Worker A starts on them;
while it is running a job, its whole process group gets SIGKILL: no acknowledgement, no clean-up, the
job stays ``running`` in the table with its lease. A fresh worker B and beat finish the work: the sweep
re-sends the killed job once its lease expires (and Redis redelivers the unacknowledged message after
its visibility timeout, which the jobs table turns into a no-op). In the end every source is ``done``
exactly once, no claim exists twice, and ``git fsck`` is clean.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.fake_llm import FakeLLM
from lore.config import load_settings
from lore.wiring import Wiring, migrate
from store.git.batch import changes_of
from store.git_store import GitStore
from tests.services import RedisServer

pytestmark = [pytest.mark.services, pytest.mark.slow]

SOURCES = 20


def _docs(shared_data: Path) -> list[Path]:
    postmortems = sorted((shared_data / "ops" / "dfds-postmortems" / "docs").glob("*.md"))
    adrs = sorted((shared_data / "ops" / "moj-adrs").glob("0*.md"))
    return (postmortems[:10] + adrs[:10])[:SOURCES]


def _rows(db: Path, sql: str, *args: object) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
        return list(con.execute(sql, args))


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":  # a zombie is already dead
                    pids.append(int(proc.name))
    return pids


def _wait(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}\n" + log.read_text(errors="replace")[-5000:])


def test_sigkill_mid_task_then_a_fresh_worker_finishes(tmp_path, shared_data, monkeypatch):
    redis = RedisServer()
    redis.start()
    fake = FakeLLM(latency_ms=300).start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        env_vars = {
            "LORE_PATHS__DATA_DIR": str(tmp_path / "data"),
            "LORE_PATHS__INGEST_DIR": str(tmp_path / "ingest"),
            "LORE_WORKER__BROKER_URL": redis.url,
            "LORE_LLM__BASE_URL": fake.base_url,
            "LORE_WORKER__LEASE_S": "40",
            "LORE_WORKER__SOFT_TIME_LIMIT_S": "30",
            "LORE_WORKER__TIME_LIMIT_S": "35",
            "LORE_WORKER__VISIBILITY_TIMEOUT_S": "60",
            "LORE_WORKER__SWEEP_INTERVAL_S": "2",
            "LORE_LOG_LEVEL": "INFO",
        }
        for key in [k for k in os.environ if k.startswith("LORE_")]:
            monkeypatch.delenv(key)
        for key, value in env_vars.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        settings = load_settings()
        migrate(settings)
        db = tmp_path / "data" / "lore.db"

        # Enqueue twenty sources: rows and jobs committed, messages on Redis, no worker yet.
        wiring = Wiring(settings)
        folder = tmp_path / "docs"
        folder.mkdir()
        for doc in _docs(shared_data):
            (folder / doc.name).write_bytes(doc.read_bytes())
        results = [wiring.ingest_path(p, root=folder) for p in sorted(folder.iterdir())]
        wiring.close()
        assert [r.status for r in results] == ["new"] * SOURCES

        logs = tmp_path / "logs"
        logs.mkdir()

        def start(name: str, *args: str) -> subprocess.Popen[bytes]:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lore.cli", *args], cwd=tmp_path, env=dict(os.environ),
                stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
            )
            procs.append(proc)
            return proc

        worker_a = start("worker-a", "worker", "--concurrency", "2")
        start("beat", "beat")

        # Kill A (main process and pool children at once) while it holds a running job, after it
        # has finished some work so the kill lands in the middle of normal operation.
        def a_is_mid_task() -> bool:
            done = _rows(db, "SELECT count(*) FROM jobs WHERE state = 'done'")[0][0]
            running = _rows(db, "SELECT id, worker FROM jobs WHERE state = 'running'")
            a_pids = {str(p) for p in _group_pids(worker_a.pid)}
            return done >= 3 and any(w and w.rsplit(":", 1)[1] in a_pids for _id, w in running)

        _wait(a_is_mid_task, 240, "worker A to be in the middle of a task", logs / "worker-a.log")
        a_pids = {str(p) for p in _group_pids(worker_a.pid)}
        os.killpg(worker_a.pid, signal.SIGKILL)
        worker_a.wait(30)
        killed = [
            job_id for job_id, worker in _rows(db, "SELECT id, worker FROM jobs WHERE state = 'running'")
            if worker and worker.rsplit(":", 1)[1] in a_pids
        ]
        assert killed, "no job was running in worker A when it was killed"
        _wait(lambda: not _group_pids(worker_a.pid), 30, "worker A's pool processes to die", logs / "worker-a.log")

        start("worker-b", "worker", "--concurrency", "2")

        def finished() -> bool:
            states = dict(_rows(db, "SELECT status, count(*) FROM sources GROUP BY status"))
            assert "failed" not in states, _rows(db, "SELECT origin, error FROM sources WHERE status = 'failed'")
            open_jobs = _rows(db, "SELECT count(*) FROM jobs WHERE state != 'done'")[0][0]
            return states.get("done") == SOURCES and open_jobs == 0

        _wait(finished, 420, "worker B to finish every source", logs / "worker-b.log")
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
        fake.stop()
        redis.close()

    # The killed jobs were claimed again by worker B and completed. (Their attempt counts prove
    # nothing here: a render job that finishes is legitimately re-queued with a fresh count when its
    # entity changes again.)
    for job_id in killed:
        state, worker = _rows(db, "SELECT state, worker FROM jobs WHERE id = ?", job_id)[0]
        assert state == "done"
        assert worker.rsplit(":", 1)[1] not in a_pids
    assert _rows(db, "SELECT count(*) FROM jobs WHERE state IN ('dead', 'failed')")[0][0] == 0
    # No claim twice: not per key (the schema forbids that) and not per text either.
    assert _rows(
        db, "SELECT source_id, entity_id, text, count(*) FROM claims GROUP BY 1, 2, 3 HAVING count(*) > 1"
    ) == []
    assert _rows(db, "SELECT count(*) FROM claims")[0][0] > SOURCES
    # Every source was done once: one raw commit and one source-page commit each, and a clean repository.
    repo = tmp_path / "data" / "wiki"
    log = [f"{subject}|{','.join(trailers.get('Lore-Source', []))}"
           for info in GitStore(repo, refresh_worktree=False).log()
           for subject, trailers in changes_of(info.message, info.trailers)]
    sources = [sid for (sid,) in _rows(db, "SELECT id FROM sources")]
    for sid in sources:
        ingests = [line for line in log if line.startswith("Ingest ") and line.endswith(sid)]
        pages = [line for line in log if line.startswith("Source page ") and sid in line]
        assert len(ingests) == 1, (sid, ingests)
        assert len(pages) == 1, (sid, pages)
    subprocess.run(["git", "-C", str(repo), "fsck", "--strict"], check=True, capture_output=True)
