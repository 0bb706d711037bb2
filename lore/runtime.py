"""Running Lore: ``lore up`` (everything on one machine) and the production processes.

``lore up`` is one process tree with no services installed::

    lore up                      supervisor: migrations, the sweep (beat) and the ingest watcher
     ├── python -m llama_cpp.server   the embedded model on loopback (unless LORE_LLM__BASE_URL is set)
     ├── lore worker                  Celery worker on the local SQLite broker (prefork or solo)
     └── lore serve                   the API, web UI and MCP on 127.0.0.1:8000

Children run in their own process groups, so Ctrl-C reaches only the supervisor, which stops them in
order: the producers (watcher, API), then the worker (warm shutdown, then cold after a grace period),
then the model server. Nothing needs saving on the way out: the jobs table holds all work, and the next
start releases jobs held by processes that no longer exist and re-sends every due job.

The production processes (``lore serve``, ``lore worker``, ``lore beat``, ``lore watch``) are the same
pieces run one per container (see docker-compose.yml and docs/operations.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from lore.config import Settings
from lore.process import Child
from lore.wiring import Wiring, embedded_base_url, install_worker_context, migrate, uses_embedded_model

log = logging.getLogger(__name__)

ALL_QUEUES = ("ingest", "synth", "render")
WATCHER_HEARTBEAT = Path(tempfile.gettempdir()) / "lore-watcher.alive"
HEARTBEAT_EVERY_S = 10.0


class RuntimeFailure(Exception):
    """``lore up`` could not start, or one of its children stopped unexpectedly."""


def configure_logging(settings: Settings) -> None:
    """This process's log lines on stderr, JSON or text (:func:`lore.logs.configure_logging`)."""
    from lore.logs import configure_logging as configure

    configure(settings.log_level, settings.log_format)


def use_metrics_dir(settings: Settings) -> None:
    """Turn on multiprocess Prometheus metrics in this process when ``LORE_METRICS_DIR`` is set.

    ``prometheus_client`` picks its storage when first imported, so this runs before anything imports it.
    """
    if settings.metrics_dir is None:
        return
    if "prometheus_client" in sys.modules:
        log.warning("prometheus_client was imported before LORE_METRICS_DIR was applied; metrics stay per process")
    settings.metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.metrics_dir.resolve())


def reset_metrics_dir(path: Path) -> None:
    """Empty a multiprocess metrics folder before the processes that write it start (stale pids' files)."""
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink()


@contextlib.contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """Turn SIGINT and SIGTERM into an event for the duration of the block (main thread only)."""
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --- production processes ------------------------------------------------------------------------


def serve(settings: Settings, *, host: str | None = None, port: int | None = None, run_migrations: bool = True) -> None:
    """Serve the API, web UI and MCP with uvicorn (``lore serve``)."""
    import uvicorn

    use_metrics_dir(settings)
    configure_logging(settings)
    if run_migrations:
        migrate(settings)
    wiring = Wiring(settings)
    try:
        uvicorn.run(
            wiring.api_app(),
            host=host or settings.api.host,
            port=port or settings.api.port,
            log_level=settings.log_level.lower(),
            proxy_headers=settings.api.proxy_headers,
            forwarded_allow_ips=settings.api.forwarded_allow_ips,
            root_path=settings.api.root_path,
            log_config=None,  # keep lore.logs' handler: uvicorn's lines become JSON lines too
        )
    finally:
        wiring.close()


def worker(
    settings: Settings,
    *,
    concurrency: int | None = None,
    queues: Sequence[str] = ALL_QUEUES,
    pool: str = "prefork",
    run_migrations: bool = True,
) -> None:
    """Run a Celery worker in this process (``lore worker``); returns when it has shut down.

    Raises:
        SystemExit: with Celery's exit status when the worker stopped on an error (for example an
            unrecoverable broker error), so a supervisor restarting on failure sees it.
    """
    use_metrics_dir(settings)
    configure_logging(settings)
    if run_migrations:
        migrate(settings)
    wiring = Wiring(settings)
    app = wiring.celery
    wiring.prepare_broker()
    install_worker_context(settings, app)
    from celery import signals

    # A receiver of setup_logging tells Celery to leave logging alone (lore.logs configured it).
    signals.setup_logging.connect(lambda **_: None, weak=False)
    if settings.metrics_dir is not None:
        from prometheus_client import multiprocess

        # A prefork child that exits takes its live gauges (the breaker state) with it.
        signals.worker_process_shutdown.connect(
            lambda pid=None, **_: multiprocess.mark_process_dead(pid or os.getpid()), weak=False
        )
    if pool == "prefork":
        share_cpus(concurrency or settings.worker.concurrency)
        preload_libraries()
    argv = [
        "worker",
        "--pool", pool,
        "--concurrency", str(concurrency or settings.worker.concurrency),
        "--queues", ",".join(queues),
        "--loglevel", settings.log_level,
        "--hostname", f"lore-{os.getpid()}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    from celery import signals

    # worker_main returns nothing, whatever the worker's exit status; read it off the WorkController.
    statuses: list[int] = []
    signals.worker_shutdown.connect(lambda sender, **_: statuses.append(int(sender.exitcode or 0)), weak=False)
    app.worker_main(argv)
    if statuses and statuses[-1]:
        raise SystemExit(statuses[-1])


def share_cpus(processes: int) -> None:
    """Give each of ``processes`` worker processes its share of the CPUs for native thread pools.

    torch (embeddings) sizes its thread pool to every core in every process; N prefork children then
    run N x cores threads and slow each other down. An explicit value in the environment wins.
    """
    per_process = str(max(1, (os.cpu_count() or 1) // max(1, processes)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, per_process)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def preload_libraries() -> None:
    """Import the heavy libraries tasks use (torch, sentence-transformers) before the pool forks.

    Each prefork child then starts with them imported (tens of seconds saved per child on a small
    machine). Only modules are imported: no model is loaded and no thread pool runs before the fork.
    """
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:  # pragma: no cover - a hard dependency; search simply degrades without it
        log.warning("sentence-transformers is not importable; workers run without embeddings")


def beat(settings: Settings) -> None:
    """Run Celery beat (``lore beat``): it sends ``jobs.sweep`` every ``LORE_WORKER__SWEEP_INTERVAL_S``.

    Run exactly one beat per deployment; a worker consuming the ``ingest`` queue runs the sweep.
    """
    from workers.beat_scheduler import HeartbeatScheduler

    configure_logging(settings)
    wiring = Wiring(settings)
    app = wiring.celery
    wiring.prepare_broker()
    from celery import signals

    signals.setup_logging.connect(lambda **_: None, weak=False)
    app.Beat(
        loglevel=settings.log_level,
        schedule=str(app.conf.beat_schedule_filename),
        scheduler=HeartbeatScheduler,
        max_interval=min(60.0, settings.worker.sweep_interval_s),
    ).run()


def make_watcher(wiring: Wiring, report: Callable[[Path, Any], None] | None = None) -> Any:
    """The ingest-folder watcher: each settled file goes through intake, then its jobs are dispatched.

    With ``LORE_INGEST__RETRACT_ON_DELETE`` a file deleted from the folder retracts its document.
    """
    from ingest.watcher import Watcher

    s = wiring.settings
    folder = s.paths.ingest_dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)

    def on_file(path: Path) -> None:
        result = wiring.ingest_path(path, root=folder)
        if report is not None:
            report(path, result)

    def on_gone(path: Path) -> None:
        if wiring.retract_deleted(path, root=folder) is not None and report is not None:
            report(path, GoneReport())

    return Watcher(
        folder,
        on_file,
        s.ingest.ignore_globs,
        s.ingest.settle_s,
        s.ingest.rescan_interval_s,
        on_gone=on_gone if s.ingest.retract_on_delete else None,
    )


class GoneReport:
    """What ``describe_intake`` shows for a deleted file whose document is being retracted."""

    status = "deleted"
    reason = "its document is being retracted"


def describe_intake(path: Path, result: Any) -> str:
    """One line about what intake did with a file."""
    detail = f": {result.reason}" if result.reason else ""
    return f"{result.status:<11} {path.name}{detail}"


def watch(settings: Settings, console: Console) -> None:
    """Watch the ingest folder until SIGINT/SIGTERM (``lore watch``)."""
    configure_logging(settings)
    migrate(settings)
    wiring = Wiring(settings)
    watcher = make_watcher(wiring, lambda p, r: console.print(describe_intake(p, r), markup=False))
    with stop_signals() as stop:
        watcher.start()
        console.print(f"watching {settings.paths.ingest_dir.resolve()}", markup=False)
        WATCHER_HEARTBEAT.touch()
        while not stop.wait(HEARTBEAT_EVERY_S):
            WATCHER_HEARTBEAT.touch()
    watcher.stop()
    wiring.close()


# --- lore up ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<data_dir>/lore-up.lock``: one ``lore up`` per data folder.

    Raises:
        RuntimeFailure: another ``lore up`` holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = (data_dir / "lore-up.lock").open("a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeFailure(f"another `lore up` is already running on {data_dir.resolve()}") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield
    finally:
        fh.close()


def _lore_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lore.cli", *args]


def wait_http(url: str, timeout_s: float, alive: Callable[[], bool]) -> bool:
    """Poll ``url`` until it answers 200, ``alive()`` turns False, or ``timeout_s`` passes."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return True
        time.sleep(0.3)
    return False


class Up:
    """``lore up``: start everything, supervise, stop everything in order.

    Args:
        settings: validated settings.
        console: where start-up lines and intake lines go.
        concurrency: worker processes (default ``LORE_WORKER__CONCURRENCY``).
        pool: ``solo`` (default): that many separate single-process workers, each restarted by this
            supervisor when it dies; ``prefork``: one Celery worker with that many pool children.
        verbose: children log to the terminal instead of ``<data_dir>/logs``.
        worker_grace_s: how long a stopping worker may finish its running tasks before a cold shutdown.

    Why separate solo workers: on the embedded broker Celery runs its blocking prefork pool, whose
    children share one task pipe behind a process-shared lock; a child killed while it waits for a task
    (SIGKILL, the OOM killer) dies holding that lock and every other child blocks forever. A solo worker
    that dies takes nothing with it; the supervisor starts a new one and the sweep (which releases the
    leases of dead processes on every tick) gives its job to the next free worker.
    """

    #: A child that fails by itself this many times within :attr:`CRASH_WINDOW_S` is crash-looping.
    MAX_RESTARTS = 5
    CRASH_WINDOW_S = 60.0

    def __init__(
        self,
        settings: Settings,
        console: Console,
        *,
        concurrency: int | None = None,
        pool: str = "solo",
        verbose: bool = False,
        worker_grace_s: float = 20.0,
    ) -> None:
        self.settings = settings
        self.console = console
        self.concurrency = concurrency or settings.worker.concurrency
        self.pool = pool
        self.verbose = verbose
        self.worker_grace_s = worker_grace_s
        self.data_dir = settings.paths.data_dir.resolve()
        self.logs = self.data_dir / "logs"
        self.model: Any = None
        self.children: list[Child] = []
        self.watcher: Any = None
        self.wiring: Wiring | None = None
        self.restarts: dict[str, list[float]] = {}
        self._stop = threading.Event()

    def _log_path(self, name: str) -> Path | None:
        return None if self.verbose else self.logs / f"{name}.log"

    def run(self) -> int:
        """Run until SIGINT/SIGTERM or until a child dies; returns the exit code."""
        with data_dir_lock(self.data_dir), stop_signals() as stop:
            self._stop = stop
            try:
                self._start()
                return self._supervise()
            finally:
                self._shutdown()

    def _say(self, text: str, *, markup: bool = True) -> None:
        self.console.print(text, highlight=False, markup=markup, soft_wrap=True)

    def _start(self) -> None:
        s = self.settings
        self._say(f"[bold]Lore[/bold] starting in {Path.cwd()}")
        metrics_dir = s.metrics_dir or self.data_dir / "run" / "metrics"
        reset_metrics_dir(metrics_dir)
        os.environ["LORE_METRICS_DIR"] = str(metrics_dir.resolve())  # the children (API, workers) share it
        migrate(s)
        self._say(f"  database   {s.database_url}")
        wiring = self.wiring = Wiring(s)
        self._say(f"  wiki       {s.paths.repo.resolve()} (git repository, branch {s.git.branch})")
        _ = wiring.store  # creates the repository before any child writes to it
        wiring.prepare_broker()
        self._say(f"  queue      {s.broker_url}")
        self._start_model()
        workers = self._worker_children()
        api_child = Child("api", _lore_command("serve", "--no-migrate"), log_path=self._log_path("api"))
        for child in (*workers, api_child):
            child.start()
            self.children.append(child)
        self._say(f"  worker     {self.concurrency} process(es), pool {self.pool}, logs {self.logs}")
        url = f"http://{s.api.host}:{s.api.port}"
        if not wait_http(f"{url}/health/live", 180.0, api_child.running):
            raise RuntimeFailure(f"the API did not start on {url}:\n{api_child.log_tail()}")
        unfinished = self._unfinished_jobs()
        wiring.sweep(release_dead=True)
        if unfinished:
            self._say(f"  resuming   {unfinished} unfinished job(s) from the last run")
        self.watcher = make_watcher(wiring, self._report_intake)
        self.watcher.start()
        threading.Thread(target=self._sweep_loop, name="lore-sweep", daemon=True).start()
        self._say(f"  ingest     drop files into {s.paths.ingest_dir.resolve()}")
        self._say(f"[bold green]ready[/bold green]  {url}  (Ctrl-C stops everything)")

    def _worker_children(self) -> list[Child]:
        if self.pool == "prefork":
            argv = _lore_command("worker", "--concurrency", str(self.concurrency), "--pool", "prefork", "--no-migrate")
            return [Child("worker", argv, log_path=self._log_path("worker"))]
        # Each process gets its share of the CPUs for torch's thread pool (an explicit setting wins).
        share = str(max(1, (os.cpu_count() or 1) // self.concurrency))
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, share)
        argv = _lore_command("worker", "--concurrency", "1", "--pool", "solo", "--no-migrate")
        return [
            Child(f"worker-{i}", argv, log_path=self._log_path(f"worker-{i}"), env=env)
            for i in range(1, self.concurrency + 1)
        ]

    def _unfinished_jobs(self) -> int:
        from store.jobs import job_counts

        assert self.wiring is not None
        with self.wiring.session_factory() as session:
            counts = job_counts(session)
        return sum(n for state, n in counts.items() if state in ("queued", "failed", "running"))

    def _report_intake(self, path: Path, result: Any) -> None:
        self._say(f"  ingest     {describe_intake(path, result)}", markup=False)

    def _start_model(self) -> None:
        from lore.llama_server import embedded_server, verify_once

        s = self.settings
        if not uses_embedded_model(s):
            extra = f" (+{len(s.llm.fallback_urls)} fallback)" if s.llm.fallback_urls else ""
            self._say(f"  model      {s.llm.model} at {s.llm.base_url} ({s.llm.dialect} dialect){extra}", markup=False)
            return
        path = s.local_model_file()
        if s.llm.local_model_path is None and verify_once(path, self.data_dir / "run" / "model-verified.json"):
            self._say(f"  model      verified sha256 of {path.name}")
        self.model = embedded_server(s, self.logs / "model.log")
        self._say(f"  model      starting {path.name} (llama.cpp) ...")
        self.model.start()
        self._say(f"  model      {s.llm.model} at {embedded_base_url(s)} (embedded llama.cpp)", markup=False)

    def _sweep_loop(self) -> None:
        assert self.wiring is not None
        while not self._stop.wait(self.settings.worker.sweep_interval_s):
            try:
                self.wiring.sweep(release_dead=True)
            except Exception as exc:  # the next tick tries again
                log.warning("sweep failed: %s", exc)

    def _supervise(self) -> int:
        while not self._stop.wait(0.5):
            for child in self.children:
                code = child.poll()
                if code is None:
                    continue
                if self._stop.is_set():
                    return 0
                if not self._restart(child, code):
                    tail = child.log_tail()
                    if tail:
                        self._say(tail, markup=False)
                    return 1
            if self.model is not None and not self.model.running():
                self._say("[red]the model server stopped unexpectedly[/red]; see " + str(self.logs / "model.log"))
                return 1
        return 0

    def _restart(self, child: Child, code: int) -> bool:
        """Start a child that died again; False when it is crash-looping (then everything stops).

        A child killed by a signal (SIGKILL, the OOM killer) is always started again. A child that exited
        with an error status by itself more than :attr:`MAX_RESTARTS` times within
        :attr:`CRASH_WINDOW_S` is failing on its own (bad settings, an unreachable broker): restarting it
        would only hide that, so everything stops with its last log lines.
        """
        now = time.monotonic()
        recent = [t for t in self.restarts.get(child.name, []) if now - t < self.CRASH_WINDOW_S]
        if code > 0 and len(recent) >= self.MAX_RESTARTS:
            self._say(
                f"[red]{child.name} stopped unexpectedly (exit {code}) {len(recent) + 1} times within "
                f"{self.CRASH_WINDOW_S:.0f} s; stopping[/red]"
            )
            return False
        if code > 0:
            self.restarts[child.name] = [*recent, now]
        self._say(f"[yellow]{child.name} stopped unexpectedly (exit {code}); restarting it[/yellow]")
        child.stop()  # the dead child's leftovers (its process group) go with it; closes its log
        child.start()
        return True

    def _shutdown(self) -> None:
        self._stop.set()
        if self.children or self.watcher is not None or self.model is not None:
            self._say("stopping ...")
        if self.watcher is not None:
            self.watcher.stop()
        for child in reversed(self.children):  # api, then worker
            if child.name.startswith("worker"):
                child.stop(((signal.SIGTERM, self.worker_grace_s), (signal.SIGQUIT, 10.0)))
            else:
                child.stop(((signal.SIGTERM, 10.0),))
        if self.model is not None:
            self.model.stop()
        if self.wiring is not None:
            self.wiring.close()
        self._say("stopped")


def up(settings: Settings, console: Console, **kwargs: Any) -> int:
    """Run ``lore up``; returns the process exit code."""
    from lore.embedded_model import ModelFileError
    from lore.llama_server import ModelServerError

    try:
        return Up(settings, console, **kwargs).run()
    except (RuntimeFailure, ModelServerError, ModelFileError) as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
