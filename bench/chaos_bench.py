"""A chaos soak of the embedded runtime (``lore bench chaos``).

``lore up`` runs as a child process exactly as a user starts it (worker with prefork children, API,
watcher, sweep), with its model pointed at the fake model server (a test double, in this process).
For ``duration_s`` seconds the soak

- drops documents into the ingest folder at a steady rate (distinct contents, written under a
  temporary name and renamed, as a careful producer does);
- every ``kill_every_s`` sends SIGKILL to one prefork worker child, preferably one that holds a
  running job (Celery starts a replacement; the job comes back once its lease expires); with
  ``victims="busy"`` an idle child is never chosen (the kill is skipped when none is busy);
- every ``fault_every_s`` makes the model fail for ``fault_s`` seconds, alternating a 503 outage
  (down: the breaker opens) and a burst of 500s (up but failing);
- samples reads throughout: ``GET /pages/{path}`` of a page that exists and ``GET /query``.

Then the faults stop and it waits (bounded) for the jobs table to drain, and audits the end state from
the ledger and git: every dropped document should be a ``done`` source whose page was added in exactly
one commit and whose claims all appear on their entity pages (``applied_once``); ``lost`` counts
documents that did not end ``done`` or ``failed``; ``duplicates`` counts claims stored twice and source
pages added twice; ``fsck`` is ``git fsck --strict``. Model calls, retries and the retry budget come
from the ``model_calls`` ledger that every worker writes. ``longest_stall_s`` is the longest time the
jobs table had open jobs while no job finished: a wedged worker shows up there.

Why ``victims`` exists: the embedded broker has no asynchronous I/O, so Celery runs its blocking prefork
pool, whose children share one task pipe guarded by a process-shared lock. An idle child waits for the
next task *holding* that lock; SIGKILL it and the lock is never released, so every other child, and every
replacement, blocks forever (see docs/benchmarks.md, "Chaos"). ``busy`` kills only children that run a
job, which exercises what Lore itself promises about interrupted jobs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.fake_llm import FakeLLM

QUERIES = ("kubernetes node not ready", "prometheus alert", "postmortem root cause", "terraform state",
           "who owns the cluster", "disk pressure", "incident timeline", "container registry")
SHOWN_ON_PAGE = ("active", "disputed", "duplicate", "superseded")
RETRY_BUDGET_RATIO = 0.2  # LORE_LLM__RETRY_BUDGET_RATIO for the soak (the default)


@dataclass
class ChaosConfig:
    """The soak's knobs (see ``lore bench chaos --help``)."""

    duration_s: float = 120.0
    rate_per_min: float = 20.0
    workers: int = 2
    latency_ms: float = 100.0
    kill_every_s: float = 20.0
    fault_every_s: float = 30.0
    fault_s: float = 8.0
    lease_s: int = 30
    sweep_interval_s: float = 3.0
    drain_timeout_s: float = 300.0
    seed: int = 7
    victims: str = "any"  # any | busy


class Progress:
    """Tracks the longest time with open jobs and no job finishing."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.last: tuple[int, float] = (-1, time.monotonic())
        self.longest = 0.0
        self.open = 0

    def sample(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            states = dict(_query(self.db, "SELECT state, count(*) FROM jobs GROUP BY state"))
            done, now = int(states.get("done", 0)), time.monotonic()
            self.open = sum(int(states.get(k, 0)) for k in ("queued", "running", "failed"))
            if done != self.last[0] or not self.open:
                self.last = (done, now)
            self.longest = max(self.longest, now - self.last[1])


def pick_documents(docs_dir: Path, count: int, seed: int) -> list[Path]:
    """``count`` markdown documents of 400 B to 30 kB with distinct contents, in a seeded order."""
    found: dict[str, Path] = {}
    for path in sorted(docs_dir.rglob("*.md")):
        size = path.stat().st_size
        if 400 <= size <= 30_000:
            found.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    docs = sorted(found.values())
    random.Random(seed).shuffle(docs)
    if len(docs) < count:
        raise ValueError(f"{docs_dir} has {len(docs)} usable documents; the soak needs {count}")
    return docs[:count]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(p) for p in (task / "children").read_text().split()]
    return out


def _worker_pool(up_pid: int) -> list[int]:
    """Pids of the prefork children of ``lore up``'s worker."""
    for pid in _children(up_pid):
        with contextlib.suppress(OSError):
            if b"\0worker\0" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return _children(pid)
    return []


def _query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as con:
        return list(con.execute(sql, args))


class ReadSampler(threading.Thread):
    """Reads the API in a loop: a page that exists, then a question; keeps (time, ok, ms)."""

    def __init__(self, api: str, seed: int) -> None:
        super().__init__(name="read-sampler", daemon=True)
        self.api = api
        self.rng = random.Random(seed)
        self.samples: list[tuple[float, bool, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        pages: list[str] = []
        listed_at = 0.0
        with httpx.Client(base_url=self.api, timeout=30) as http:
            while not self.stop.wait(0.05):
                now = time.monotonic()
                if now - listed_at > 5:
                    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                        pages = [p["path"] for p in http.get("/pages", params={"limit": 1000}).json()["pages"]]
                    listed_at = now
                for path, params in ((self.rng.choice(pages) if pages else None, None),
                                     ("query", {"q": self.rng.choice(QUERIES)})):
                    if path is None:
                        continue
                    url = "/query" if params else f"/pages/{path}"
                    started = time.perf_counter()
                    try:
                        ok = http.get(url, params=params).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    self.samples.append((time.monotonic(), ok, (time.perf_counter() - started) * 1000))


def _percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else None


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def _retries(db: Path) -> tuple[int, int, int, Counter[str]]:
    """(first attempts, retries after a transient failure, breaker refusals, outcomes) from the ledger."""
    rows = _query(db, "SELECT job_id, stage, prompt_hash, attempt, outcome FROM model_calls ORDER BY id")
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
    return first, retries, refused, outcomes


def audit(data: Path, dropped: dict[str, str]) -> dict[str, Any]:
    """The end state: sources, duplicates, pages, fsck (``dropped``: sha256 -> file name)."""
    db, repo = data / "lore.db", data / "wiki"
    sources = {sid: (status, slug) for sid, status, slug in _query(db, "SELECT id, status, slug FROM sources")}
    done = [s for s in dropped if sources.get(s, ("",))[0] == "done"]
    failed = [s for s in dropped if sources.get(s, ("",))[0] == "failed"]
    dup_claims = _query(db, "SELECT source_id, count(*) - 1 FROM claims GROUP BY entity_id, source_id, text "
                            "HAVING count(*) > 1")
    dup_entities = _query(db, "SELECT count(*) - 1 FROM entities GROUP BY type, norm_name HAVING count(*) > 1")
    added = Counter(line for line in _git(repo, "log", "--diff-filter=A", "--name-only", "--format=", "main")
                    .stdout.splitlines() if line.startswith("wiki/sources/"))
    head = set(_git(repo, "ls-tree", "-r", "--name-only", "main").stdout.splitlines())
    pages: dict[str, str] = {}
    missing: Counter[str] = Counter()
    claims = _query(db, "SELECT c.id, c.source_id, e.type, e.slug FROM claims c JOIN entities e ON e.id = c.entity_id "
                        f"WHERE c.status IN {SHOWN_ON_PAGE}")
    for cid, sid, etype, slug in claims:
        path = f"wiki/{etype}/{slug}.md"
        if path not in pages:
            pages[path] = _git(repo, "show", f"main:{path}").stdout
        if f"[^{cid}]" not in pages[path]:
            missing[sid] += 1
    dup_by_source = Counter(dict(dup_claims))
    applied_once = [s for s in done if added[f"wiki/sources/{sources[s][1]}.md"] == 1
                    and f"wiki/sources/{sources[s][1]}.md" in head and not missing[s] and not dup_by_source[s]]
    fsck = _git(repo, "fsck", "--strict", "--no-dangling", "--no-progress")
    jobs = dict(_query(db, "SELECT state, count(*) FROM jobs GROUP BY state"))
    return {
        "sources": len(dropped),
        "ingested": sum(1 for s in dropped if s in sources),
        "done": len(done),
        "failed": len(failed),
        "applied_once": len(applied_once),
        "lost": len(dropped) - len(done) - len(failed),
        "lost_files": sorted(dropped[s] for s in dropped if s not in done and s not in failed),
        "duplicates": sum(dup_by_source.values()) + sum(n - 1 for n in added.values() if n > 1),
        "duplicate_entities": sum(n for (n,) in dup_entities),
        "claims_not_on_pages": sum(missing.values()),
        "fsck": "ok" if fsck.returncode == 0 and not fsck.stderr.strip() else (fsck.stdout + fsck.stderr).strip(),
        "jobs": jobs,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(cfg: ChaosConfig, root: Path, fake: FakeLLM, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        LORE_PATHS__DATA_DIR=str(root / "data"), LORE_PATHS__INGEST_DIR=str(root / "inbox"),
        LORE_LLM__BASE_URL=fake.base_url, LORE_LLM__BREAKER_RESET_S="5", LORE_LLM__READ_TIMEOUT_S="30",
        LORE_LLM__TOTAL_TIMEOUT_S="60", LORE_LLM__RETRY_BUDGET_RATIO=str(RETRY_BUDGET_RATIO),
        LORE_API__PORT=str(port), LORE_WORKER__CONCURRENCY=str(cfg.workers),
        LORE_WORKER__LEASE_S=str(cfg.lease_s), LORE_WORKER__SWEEP_INTERVAL_S=str(cfg.sweep_interval_s),
        LORE_INGEST__SETTLE_S="0.5", LORE_INGEST__RESCAN_INTERVAL_S="5", LORE_LOG_LEVEL="INFO",
    )
    return env


def _start_up(root: Path, env: dict[str, str], api: str, timeout_s: float = 300.0) -> subprocess.Popen[bytes]:
    log = root / "lore-up.log"
    proc = subprocess.Popen([sys.executable, "-m", "lore.cli", "up"], cwd=root, env=env, stdin=subprocess.DEVNULL,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lore up exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if "ready" in log.read_text(errors="replace"):
            with contextlib.suppress(httpx.HTTPError):  # load the API's embedder before the clock starts
                httpx.get(f"{api}/query", params={"q": "warm up"}, timeout=120)
            return proc
        time.sleep(0.3)
    raise TimeoutError(f"lore up not ready after {timeout_s:.0f}s")


def _stop_up(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _kill_a_worker(up_pid: int, db: Path, rng: random.Random, victims: str) -> tuple[bool, bool]:
    """SIGKILL one prefork child, preferably one running a job; returns (killed, mid_task)."""
    pool = _worker_pool(up_pid)
    if not pool:
        return False, False
    busy = set()
    with contextlib.suppress(sqlite3.Error):
        for (worker,) in _query(db, "SELECT worker FROM jobs WHERE state = 'running'"):
            pid = str(worker or "").rsplit(":", 1)[-1]
            if pid.isdigit() and int(pid) in pool:
                busy.add(int(pid))
    if not busy and victims == "busy":
        return False, False
    victim = rng.choice(sorted(busy) or pool)
    try:
        os.kill(victim, signal.SIGKILL)
    except ProcessLookupError:
        return False, False
    return True, victim in busy


def _drain(db: Path, dropped: dict[str, str], timeout_s: float, progress: Progress) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        progress.sample()
        with contextlib.suppress(sqlite3.Error):
            states = dict(_query(db, "SELECT id, status FROM sources"))
            open_jobs = _query(db, "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running', 'failed')")[0][0]
            if open_jobs == 0 and all(states.get(s) in ("done", "failed") for s in dropped):
                break
        time.sleep(1.0)
    return round(time.monotonic() - started, 1)


def run_chaos_bench(
    docs_dir: Path, config: ChaosConfig | None = None, *, workdir: Path | None = None
) -> dict[str, Any]:
    """Run the soak and return one JSON-ready object (see the module docstring for each figure)."""
    cfg = config or ChaosConfig()
    rng = random.Random(cfg.seed)
    count = max(1, int(cfg.duration_s * cfg.rate_per_min / 60.0))
    docs = pick_documents(docs_dir, count, cfg.seed)
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lore-bench-chaos-")))
        inbox = root / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        fake = stack.enter_context(FakeLLM(latency_ms=cfg.latency_ms, concurrency=2 * cfg.workers, seed=cfg.seed))
        port = _free_port()
        api = f"http://127.0.0.1:{port}"
        proc = _start_up(root, _environment(cfg, root, fake, port), api)
        stack.callback(_stop_up, proc)
        db = root / "data" / "lore.db"
        sampler = ReadSampler(api, cfg.seed)
        sampler.start()
        dropped: dict[str, str] = {}
        kills = mid_task = 0
        fault_seconds = 0.0
        faults = 0
        start = time.monotonic()
        next_drop, next_kill, next_fault = 0.0, cfg.kill_every_s / 2, cfg.fault_every_s
        progress, next_sample = Progress(db), 0.0
        while (elapsed := time.monotonic() - start) < cfg.duration_s:
            if elapsed >= next_sample:
                progress.sample()
                next_sample += 1.0
            if elapsed >= next_drop and len(dropped) < len(docs):
                doc = docs[len(dropped)]
                name = f"{len(dropped):04d}-{doc.name}"
                data = doc.read_bytes()
                (inbox / f"{name}.tmp").write_bytes(data)
                (inbox / f"{name}.tmp").rename(inbox / name)
                dropped[hashlib.sha256(data).hexdigest()] = name
                next_drop += 60.0 / cfg.rate_per_min
            if elapsed >= next_kill:
                killed, busy = _kill_a_worker(proc.pid, db, rng, cfg.victims)
                kills += killed
                mid_task += busy
                next_kill += cfg.kill_every_s
            if elapsed >= next_fault:
                length = min(cfg.fault_s, cfg.duration_s - elapsed)
                fake.outage(length, ("down", "error")[faults % 2])
                fault_seconds += length
                faults += 1
                next_fault += cfg.fault_every_s
            time.sleep(0.05)
        chaos_end = time.monotonic()
        fake.outage(0)
        drain_s = _drain(db, dropped, cfg.drain_timeout_s, progress)
        sampler.stop.set()
        sampler.join(timeout=60)
        result = audit(root / "data", dropped)
        first, retries, refused, outcomes = _retries(db)
    during = [s for s in sampler.samples if start <= s[0] <= chaos_end]
    latencies = [ms for _, ok, ms in during if ok]
    return {
        **result,
        "model_calls": sum(outcomes.values()),
        "model_outcomes": dict(outcomes),
        "first_attempts": first,
        "retries": retries,
        "breaker_refusals": refused,
        "budget": {"retries": retries, "first_attempts": first, "spent": round(retries / max(1, first), 3),
                   "cap_ratio": RETRY_BUDGET_RATIO, "cap_min_per_window": 3, "window_s": 60,
                   "scope": "per worker process"},
        "reads": len(during),
        "read_errors": sum(1 for _, ok, _ in during if not ok),
        "p50_read_ms": _percentile(latencies, 0.50),
        "p99_read_ms": _percentile(latencies, 0.99),
        "kills": kills,
        "kills_mid_task": mid_task,
        "model_faults": faults,
        "model_fault_seconds": round(fault_seconds, 1),
        "drain_s": drain_s,
        "longest_stall_s": round(progress.longest, 1),
        "config": asdict(cfg),
        "cpus": os.cpu_count(),
    }
