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

When ``lore up`` exits (it stops everything when a child dies), the soak starts it again, as a service
manager would, and counts it (``runtime_restarts``). After the chaos, the faults stop and the soak waits
(bounded) for the jobs table to drain, then audits the end state (``bench.chaos_audit``): ``lost``,
``duplicates``, ``applied_once``, ``fsck``, model calls and retries from the ``model_calls`` ledger, and
``longest_stall_s``, the longest time with open jobs and none finishing (a wedged worker shows there).

Why ``victims`` exists: with ``lore up --pool prefork`` on the embedded broker, Celery's blocking prefork
pool children share one task pipe guarded by a process-shared lock; an idle child waits for the next task
*holding* that lock, and SIGKILL leaves it held, so every other child blocks forever (see
docs/benchmarks.md, "Chaos"). This soak found it; ``lore up`` now runs separate solo workers by default
and restarts any that dies, so ``any`` is the default victim choice. ``busy`` kills only processes that
run a job.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.chaos_audit import Progress, audit, model_call_figures, query
from bench.fake_llm import FakeLLM

QUERIES = ("kubernetes node not ready", "prometheus alert", "postmortem root cause", "terraform state",
           "who owns the cluster", "disk pressure", "incident timeline", "container registry")
RETRY_BUDGET_RATIO = 0.2  # LORE_LLM__RETRY_BUDGET_RATIO for the soak (the default)
MAX_RESTARTS = 10


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
    """Pids of the processes that run jobs: ``lore up``'s solo workers, or its prefork worker's children."""
    found: list[int] = []
    for pid in _children(up_pid):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"\0worker\0" in cmdline:
                found += [pid] if b"\0solo\0" in cmdline else _children(pid)
    return found


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
                if time.monotonic() - listed_at > 5:
                    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                        pages = [p["path"] for p in http.get("/pages", params={"limit": 1000}).json()["pages"]]
                    listed_at = time.monotonic()
                requests = [("/query", {"q": self.rng.choice(QUERIES)})]
                if pages:
                    requests.insert(0, (f"/pages/{self.rng.choice(pages)}", {}))
                for url, params in requests:
                    started = time.perf_counter()
                    try:
                        ok = http.get(url, params=params).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    self.samples.append((time.monotonic(), ok, (time.perf_counter() - started) * 1000))


def _percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Runtime:
    """``lore up`` as a child process in its own session, started again whenever it exits."""

    def __init__(self, cfg: ChaosConfig, root: Path, fake: FakeLLM) -> None:
        self.root = root
        self.port = _free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.log = root / "lore-up.log"
        self.exits: list[int] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
        self.env.update(
            HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
            LORE_PATHS__DATA_DIR=str(root / "data"), LORE_PATHS__INGEST_DIR=str(root / "inbox"),
            LORE_LLM__BASE_URL=fake.base_url, LORE_LLM__BREAKER_RESET_S="5", LORE_LLM__READ_TIMEOUT_S="30",
            LORE_LLM__TOTAL_TIMEOUT_S="60", LORE_LLM__RETRY_BUDGET_RATIO=str(RETRY_BUDGET_RATIO),
            LORE_API__PORT=str(self.port), LORE_WORKER__CONCURRENCY=str(cfg.workers),
            LORE_WORKER__LEASE_S=str(cfg.lease_s), LORE_WORKER__SWEEP_INTERVAL_S=str(cfg.sweep_interval_s),
            LORE_INGEST__SETTLE_S="0.5", LORE_INGEST__RESCAN_INTERVAL_S="5", LORE_LOG_LEVEL="INFO",
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 300.0) -> None:
        """Start ``lore up`` and wait for its "ready" line (and the API's first answer to a question)."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "lore.cli", "up"], cwd=self.root, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.log.open("rb") as fh:
                fh.seek(offset)
                text = fh.read().decode(errors="replace")
            if self.proc.poll() is not None:
                raise RuntimeError(f"lore up exited with {self.proc.returncode}:\n{text[-3000:]}")
            if "ready" in text:
                with contextlib.suppress(httpx.HTTPError):  # the API loads its embedder on the first question
                    httpx.get(f"{self.api}/query", params={"q": "warm up"}, timeout=120)
                return
            time.sleep(0.3)
        raise TimeoutError(f"lore up not ready after {timeout_s:.0f}s")

    def keep_running(self) -> None:
        """Start ``lore up`` again if it exited (at most ``MAX_RESTARTS`` times)."""
        if self.proc is not None and self.proc.poll() is not None:
            self.exits.append(int(self.proc.returncode))
            if len(self.exits) > MAX_RESTARTS:
                raise RuntimeError(f"lore up exited {len(self.exits)} times; see {self.log}")
            self.start()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _kill_a_worker(up_pid: int, db: Path, rng: random.Random, victims: str) -> tuple[bool, bool]:
    """SIGKILL one prefork child, preferably one running a job; returns (killed, mid_task)."""
    pool = _worker_pool(up_pid)
    if not pool:
        return False, False
    busy = set()
    with contextlib.suppress(sqlite3.Error):
        for (worker,) in query(db, "SELECT worker FROM jobs WHERE state = 'running'"):
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


def _drained(db: Path, dropped: dict[str, str]) -> bool:
    with contextlib.suppress(sqlite3.Error):
        states = dict(query(db, "SELECT id, status FROM sources"))
        open_jobs = query(db, "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running', 'failed')")[0][0]
        return open_jobs == 0 and all(states.get(s) in ("done", "failed") for s in dropped)
    return False


def run_chaos_bench(
    docs_dir: Path, config: ChaosConfig | None = None, *, workdir: Path | None = None
) -> dict[str, Any]:
    """Run the soak and return one JSON-ready object (see the module docstring for each figure)."""
    cfg = config or ChaosConfig()
    rng = random.Random(cfg.seed)
    docs = pick_documents(docs_dir, max(1, int(cfg.duration_s * cfg.rate_per_min / 60.0)), cfg.seed)
    dropped: dict[str, str] = {}
    kills = mid_task = faults = 0
    fault_seconds = 0.0
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lore-bench-chaos-")))
        inbox = root / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        fake = stack.enter_context(FakeLLM(latency_ms=cfg.latency_ms, concurrency=2 * cfg.workers, seed=cfg.seed))
        runtime = Runtime(cfg, root, fake)
        stack.callback(runtime.stop)
        runtime.start()
        db = root / "data" / "lore.db"
        sampler = ReadSampler(runtime.api, cfg.seed)
        sampler.start()
        progress = Progress(db)
        start = time.monotonic()
        next_drop, next_kill, next_fault, next_tick = 0.0, cfg.kill_every_s / 2, cfg.fault_every_s, 0.0
        while (elapsed := time.monotonic() - start) < cfg.duration_s:
            if elapsed >= next_tick:
                progress.sample()
                runtime.keep_running()
                next_tick += 1.0
            if elapsed >= next_drop and len(dropped) < len(docs):
                doc = docs[len(dropped)]
                name = f"{len(dropped):04d}-{doc.name}"
                data = doc.read_bytes()
                (inbox / f"{name}.tmp").write_bytes(data)
                (inbox / f"{name}.tmp").rename(inbox / name)
                dropped[hashlib.sha256(data).hexdigest()] = name
                next_drop += 60.0 / cfg.rate_per_min
            if elapsed >= next_kill:
                killed, busy = _kill_a_worker(runtime.pid, db, rng, cfg.victims)
                kills, mid_task = kills + killed, mid_task + busy
                next_kill += cfg.kill_every_s
            if elapsed >= next_fault:
                length = min(cfg.fault_s, cfg.duration_s - elapsed)
                fake.outage(length, ("down", "error")[faults % 2])
                fault_seconds, faults = fault_seconds + length, faults + 1
                next_fault += cfg.fault_every_s
            time.sleep(0.05)
        chaos_end = time.monotonic()
        fake.outage(0)
        while not _drained(db, dropped) and time.monotonic() - chaos_end < cfg.drain_timeout_s:
            progress.sample()
            runtime.keep_running()
            time.sleep(1.0)
        drain_s = time.monotonic() - chaos_end
        sampler.stop.set()
        sampler.join(timeout=60)
        result = {**audit(root / "data", dropped), **model_call_figures(db)}
    during = [s for s in sampler.samples if start <= s[0] <= chaos_end]
    latencies = [ms for _, ok, ms in during if ok]
    retries, first = result["retries"], result["first_attempts"]
    return {
        **result,
        "budget": {"retries": retries, "first_attempts": first, "spent": round(retries / max(1, first), 3),
                   "cap_ratio": RETRY_BUDGET_RATIO, "cap_min_per_window": 3, "window_s": 60,
                   "scope": "ledger, shared by every worker process"},
        "reads": len(during),
        "read_errors": sum(1 for _, ok, _ in during if not ok),
        "p50_read_ms": _percentile(latencies, 0.50),
        "p99_read_ms": _percentile(latencies, 0.99),
        "kills": kills,
        "kills_mid_task": mid_task,
        "model_faults": faults,
        "model_fault_seconds": round(fault_seconds, 1),
        "runtime_restarts": len(runtime.exits),
        "runtime_exit_codes": runtime.exits,
        "drain_s": round(drain_s, 1),
        "longest_stall_s": round(progress.longest, 1),
        "config": asdict(cfg),
        "cpus": os.cpu_count(),
    }
