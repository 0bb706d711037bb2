"""Sources per minute through the embedded runtime's own queue, for 1, 2 and 4 worker processes.

Unlike ``run_ingest_bench`` (in-process worker threads), this runs what ``lore up`` runs: documents go
through the intake service and are dispatched to the local SQLite broker, and a ``lore worker``
subprocess with N prefork processes takes them from there (Celery, the jobs table, git, SQLite), with
the fake model server (a test double) answering after a fixed latency. Each worker count gets a fresh
data folder. The clock starts when the first document is dispatched and stops when every source is
``done``, so it includes each worker process loading the embedding model on its first task.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from bench.fake_llm import FakeLLM


def _wait_ready(log: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if " ready." in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"worker not ready after {timeout_s:.0f}s")


def _counts(db: Path) -> tuple[int, int, int]:
    with closing(sqlite3.connect(db, timeout=30)) as con:
        done = con.execute("SELECT count(*) FROM sources WHERE status = 'done'").fetchone()[0]
        failed = con.execute("SELECT count(*) FROM sources WHERE status = 'failed'").fetchone()[0]
        calls = con.execute("SELECT count(*) FROM model_calls").fetchone()[0]
    return int(done), int(failed), int(calls)


def _one_run(files: Sequence[Path], processes: int, fake: FakeLLM, root: Path, timeout_s: float) -> dict[str, Any]:
    from lore.config import load_settings
    from lore.wiring import Wiring, migrate

    data = root / f"workers-{processes}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
    env.update(
        LORE_PATHS__DATA_DIR=str(data),
        LORE_PATHS__INGEST_DIR=str(root / "inbox"),
        LORE_LLM__BASE_URL=fake.base_url,
        LORE_LOG_LEVEL="INFO",
    )
    settings = load_settings(
        paths={"data_dir": data, "ingest_dir": root / "inbox"}, llm={"base_url": fake.base_url}
    )
    migrate(settings)
    wiring = Wiring(settings)
    wiring.prepare_broker()
    log = data / "worker.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lore.cli", "worker", "--concurrency", str(processes), "--no-migrate"],
        cwd=root, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        _wait_ready(log, proc, 180)
        folder = files[0].parent
        start = time.perf_counter()
        for path in files:
            wiring.ingest_path(path, root=folder)
        deadline = time.monotonic() + timeout_s
        while True:
            done, failed, calls = _counts(data / "lore.db")
            if done + failed >= len(files):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{done}/{len(files)} sources done after {timeout_s:.0f}s with {processes} workers")
            time.sleep(0.25)
        seconds = time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        wiring.close()
    return {
        "worker_processes": processes,
        "sources": len(files),
        "done": done,
        "failed": failed,
        "seconds": round(seconds, 2),
        "sources_per_min": round(len(files) / seconds * 60, 2),
        "model_calls": calls,
    }


def run_queue_bench(
    docs_dir: Path,
    *,
    limit: int = 20,
    latency_ms: float = 200.0,
    processes: Sequence[int] = (1, 2, 4),
    timeout_s: float = 900.0,
) -> dict[str, Any]:
    """Ingest ``limit`` documents through the embedded queue once per worker-process count.

    Returns:
        One JSON-ready object: the settings, one entry per run, and the speed-up over one process.
    """
    files = sorted(p for p in docs_dir.iterdir() if p.is_file() and p.suffix in (".md", ".txt"))[:limit]
    if not files:
        raise ValueError(f"no .md or .txt documents in {docs_dir}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="lore-bench-queue-") as tmp, \
            FakeLLM(latency_ms=latency_ms, concurrency=max(processes) * 2, seed=7) as fake:
        for n in processes:
            runs.append(_one_run(files, n, fake, Path(tmp), timeout_s))
    base = runs[0]["sources_per_min"] or 1.0
    return {
        "queue": "embedded (Celery on kombu's SQLAlchemy transport, SQLite)",
        "latency_ms": latency_ms,
        "cpus": os.cpu_count(),
        "runs": runs,
        "speedup": {str(r["worker_processes"]): round(r["sources_per_min"] / base, 2) for r in runs},
    }
