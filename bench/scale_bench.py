"""Several hosts writing one wiki through a central git repository (``lore bench scale``).

What runs, all on this machine and on loopback:

- one central bare repository served by ``git daemon`` (the repository of record);
- real PostgreSQL (the shared ledger) and real Redis (the shared broker), started by the run with the
  test suite's service helpers (``tests/services.py``), and the fake model server (a test double);
- ``hosts`` "hosts": each its own data folder with its own clone (``LORE_GIT__REMOTE_URL``), and one
  ``lore worker`` with ``workers_per_host`` processes; one ``lore beat`` for the sweep.

``sources`` small documents, each stating three figures about the same few systems (Kafka,
PostgreSQL, Redis, Kubernetes), are taken in round-robin through the hosts' intake, so every host
renders the same hot pages. The clock runs from the first intake until every source is done and no
job is open. Then the audit, against the central repository's HEAD:

- ``done``: sources done (``failed`` those that failed);
- ``duplicates``: claims stored twice (same source, entity and text) plus sources whose raw bytes or
  source page were published more than once;
- ``claims_not_on_pages``: active claims whose footnote is not on their entity page;
- ``lost``: commits a host pushed (its ``lore-pushed.log`` lists them) that are not in the central history;
- ``history_linear``, ``remote_fsck`` (``git fsck --strict``), ``clones_converged`` (each host
  fetched, is at the central HEAD, and its working tree is clean).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.fake_llm import FakeLLM
from bench.git_daemon import git_daemon, make_bare
from store.git.batch import changes_of
from store.git.remote import PUSHED_LOG
from store.git_store import GitStore
from wiki.entity_page import footnote_label

SYSTEMS = ("Kafka", "PostgreSQL", "Redis", "Kubernetes")
READY_TIMEOUT_S = 240.0


def write_docs(folder: Path, count: int, entities: int) -> list[Path]:
    """``count`` documents, each with three distinct figures about ``entities`` shared systems."""
    folder.mkdir(parents=True, exist_ok=True)
    names = SYSTEMS[: max(1, min(entities, len(SYSTEMS)))]
    paths = []
    for i in range(count):
        lines = [f"# Operations note {i + 1}", ""]
        for k in range(3):
            name = names[(i + k) % len(names)]
            lines.append(f"{name} handled {1000 + i * 7 + k} requests per second on node {i + 1}-{k + 1}.")
            lines.append("")
        path = folder / f"note-{i + 1:03d}.md"
        path.write_text("\n".join(lines))
        paths.append(path)
    return paths


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.5)


def _ready(log: Path) -> Callable[[], bool]:
    return lambda: " ready." in log.read_text(errors="replace")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def run_scale_bench(
    *,
    hosts: int = 3,
    workers_per_host: int = 2,
    sources: int = 60,
    entities: int = 4,
    latency_ms: float = 50.0,
    timeout_s: float = 1200.0,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Run the multi-host workload and audit the central repository and every clone.

    Args:
        hosts: Hosts (data folder + clone + one worker each).
        workers_per_host: Worker processes per host.
        sources: Documents taken in.
        entities: Shared systems the documents' claims are about (1-4).
        latency_ms: Fake model latency per call.
        timeout_s: Longest the work may take.
        workdir: Folder for everything (kept); default a temporary folder removed afterwards.

    Returns:
        ``hosts``, ``sources``, ``done``, ``failed``, ``lost``, ``duplicates``, ``claims_not_on_pages``,
        ``remote_fsck``, ``clones_converged``, ``history_linear``, ``seconds``, and detail:
        ``claims``, ``commits``, ``group_commits``, ``pushed_by_host``.
    """
    from lore.config import load_settings
    from lore.wiring import Wiring, migrate
    from tests.services import RedisServer, postgres_server  # the suite's real-service helpers

    with contextlib.ExitStack() as stack:
        temp = None if workdir else stack.enter_context(tempfile.TemporaryDirectory(prefix="lore-scale-"))
        root = Path(workdir) if workdir else Path(str(temp))
        root.mkdir(parents=True, exist_ok=True)
        db_url = stack.enter_context(postgres_server())
        redis = RedisServer()
        redis.start()
        stack.callback(redis.close)
        fake = stack.enter_context(FakeLLM(latency_ms=latency_ms, concurrency=hosts * workers_per_host * 2, seed=7))
        bare = make_bare(root / "served" / "central.git")
        url = stack.enter_context(git_daemon(root / "served")) + "/central.git"
        docs = write_docs(root / "docs", sources, entities)

        base_env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
        settings, envs = [], []
        for h in range(hosts):
            data = root / f"host-{h}"
            values = {
                "LORE_PATHS__DATA_DIR": str(data),
                "LORE_PATHS__INGEST_DIR": str(data / "inbox"),
                "LORE_DATABASE__URL": db_url,
                "LORE_WORKER__BROKER_URL": redis.url,
                "LORE_LLM__BASE_URL": fake.base_url,
                "LORE_GIT__REMOTE_URL": url,
                "LORE_GIT__FETCH_INTERVAL_S": "2",
                "LORE_WORKER__SWEEP_INTERVAL_S": "2",
                "LORE_LOG_LEVEL": "INFO",
            }
            envs.append({**base_env, **values})
            settings.append(load_settings(
                paths={"data_dir": data, "ingest_dir": data / "inbox"}, database={"url": db_url},
                worker={"broker_url": redis.url, "sweep_interval_s": 2}, llm={"base_url": fake.base_url},
                git={"remote_url": url, "fetch_interval_s": 2},
            ))
        migrate(settings[0])
        wirings = [Wiring(s) for s in settings]
        for wiring in wirings:
            stack.callback(wiring.close)
            _ = wiring.store  # each host clones the central repository

        procs = stack.enter_context(_processes())
        logs = []
        for h in range(hosts):
            log = root / f"host-{h}" / "worker.log"
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "lore.cli", "worker", "--concurrency", str(workers_per_host), "--no-migrate"],
                cwd=root / f"host-{h}", env=envs[h], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                start_new_session=True,
            ))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "lore.cli", "beat"], cwd=root / "host-0", env=envs[0],
            stdout=(root / "beat.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        ))
        for log in logs:
            _wait(_ready(log), READY_TIMEOUT_S, f"{log} ready")

        engine = create_engine(db_url)
        stack.callback(engine.dispose)

        def scalar(sql: str) -> int:
            with engine.connect() as conn:
                return int(conn.execute(text(sql)).scalar() or 0)

        began = time.perf_counter()
        for i, doc in enumerate(docs):
            wirings[i % hosts].ingest_path(doc, root=doc.parent)

        def finished() -> bool:
            settled = scalar("SELECT count(*) FROM sources WHERE status IN ('done', 'failed')") >= sources
            return settled and scalar("SELECT count(*) FROM jobs WHERE state NOT IN ('done', 'dead', 'failed')") == 0

        _wait(finished, timeout_s, "every source done and no job open")
        seconds = time.perf_counter() - began
        for proc in procs:  # stop the writers before the audit reads a settled state
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(120)

        figures = _audit(engine, bare, [w.store for w in wirings], sources)
        figures.update(hosts=hosts, workers_per_host=workers_per_host, sources=sources,
                       seconds=round(seconds, 2))
        return figures


def _audit(engine: Any, bare: Path, stores: list[GitStore], sources: int) -> dict[str, Any]:
    """Check the ledger against the central repository's HEAD and every clone against the centre."""
    central = GitStore(bare, refresh_worktree=False)
    with engine.connect() as conn:
        done = int(conn.execute(text("SELECT count(*) FROM sources WHERE status = 'done'")).scalar() or 0)
        failed = int(conn.execute(text("SELECT count(*) FROM sources WHERE status = 'failed'")).scalar() or 0)
        twice = int(conn.execute(text(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM claims "
            "GROUP BY source_id, entity_id, text HAVING count(*) > 1) AS d")).scalar() or 0)
        active = conn.execute(text(
            "SELECT c.id, e.type, e.slug FROM claims c JOIN entities e ON e.id = c.entity_id "
            "WHERE c.status = 'active'")).all()
        source_ids = [row[0] for row in conn.execute(text("SELECT id FROM sources"))]
    pages = central.read_many({f"wiki/{kind}/{slug}.md" for _, kind, slug in active})
    def on_page(cid: str, kind: str, slug: str) -> bool:
        body = (pages[f"wiki/{kind}/{slug}.md"].content or b"").decode("utf-8", "replace")
        return f"[^{footnote_label(cid)}]" in body

    not_on_pages = sum(1 for cid, kind, slug in active if not on_page(cid, kind, slug))
    history = central.log()
    changes = [(subject, trailers) for info in history for subject, trailers in changes_of(info.message, info.trailers)]
    raw = Counter(t.get("Lore-Source", [""])[0] for s, t in changes if s.startswith("Ingest "))
    source_pages = Counter(sid for s, t in changes if s.startswith("Source page ") for sid in t.get("Lore-Source", []))
    repeated = sum(1 for sid in source_ids if raw[sid] > 1 or source_pages[sid] > 1)
    on_centre = {info.id for info in history}
    pushed: list[int] = []
    lost = 0
    for store in stores:
        log_file = store._repo.git_dir() / PUSHED_LOG
        mine = log_file.read_text().split() if log_file.exists() else []
        pushed.append(len(mine))
        lost += sum(1 for commit in mine if commit not in on_centre)
    fsck = _git(bare, "fsck", "--strict", "--no-progress")
    fsck_text = "ok" if fsck.returncode == 0 and not fsck.stderr.strip() else (fsck.stdout + fsck.stderr)[-2000:]
    merges = int(_git(bare, "rev-list", "--min-parents=2", "--count", central.ref).stdout.strip() or 0)
    converged = True
    for store in stores:
        store.sync()
        clean = _git(store.root, "status", "--porcelain", "--untracked-files=all").stdout.strip() == ""
        converged = converged and clean and store.head() == central.head()
    return {
        "done": done,
        "failed": failed,
        "lost": lost,
        "duplicates": twice + repeated,
        "claims": len(active),
        "claims_not_on_pages": not_on_pages,
        "remote_fsck": fsck_text,
        "history_linear": merges == 0,
        "clones_converged": converged,
        "commits": len(history),
        "group_commits": sum(1 for info in history if info.message.startswith("Group commit of ")),
        "pushed_by_host": pushed,
        "missing_sources": sources - len(source_ids),
    }
