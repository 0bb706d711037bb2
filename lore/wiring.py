"""The composition root: build every collaborator from ``Settings``, once per process.

Only this module (and the CLI) turns settings into objects. Each process creates one :class:`Wiring`
and asks it for what it needs; everything is built lazily and cached, so a process that only serves
the API never loads the model client, and a Celery prefork child builds its own engine and HTTP
clients after the fork (see :func:`install_worker_context`). The model endpoint is ``LORE_LLM__BASE_URL``
when set, otherwise the embedded llama.cpp server that ``lore up`` starts on loopback, followed by
``LORE_LLM__FALLBACK_URLS`` in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lore.config import Settings

if TYPE_CHECKING:  # pragma: no cover
    from celery import Celery

    from ingest.service import IntakeResult
    from store.git_store import GitStore
    from synth.client import CallRecord, ModelClient
    from synth.deps import SynthDeps
    from workers.tasks import WorkerContext

log = logging.getLogger(__name__)


def embedded_base_url(settings: Settings) -> str:
    """The base URL of the embedded llama.cpp server (``lore up`` starts it)."""
    return f"http://{settings.llm.local_host}:{settings.llm.local_port}/v1"


def model_urls(settings: Settings) -> list[str]:
    """Model endpoints in the order they are tried: the primary one, then the fallbacks."""
    primary = settings.llm.base_url or embedded_base_url(settings)
    urls = [primary]
    for url in settings.llm.fallback_urls:
        if url not in urls:
            urls.append(url)
    return urls


def uses_embedded_model(settings: Settings) -> bool:
    """True when no model server URL is configured, so ``lore up`` must start the local one."""
    return settings.llm.base_url is None


def migrate(settings: Settings) -> None:
    """Bring the database to the newest schema (idempotent)."""
    from store.migrate import upgrade

    upgrade(settings.database_url)


def make_recorder(session_factory: sessionmaker[Session]) -> Callable[[CallRecord], None]:
    """A model-call recorder that writes one ``model_calls`` row per attempt in its own transaction.

    A failure to record is logged, never raised: bookkeeping must not fail a model call.
    """
    from store.models import ModelCall

    def record(rec: CallRecord) -> None:
        try:
            with session_factory() as session, session.begin():
                session.add(
                    ModelCall(
                        stage=rec.stage,
                        model=rec.model,
                        endpoint=rec.endpoint,
                        attempt=rec.attempt,
                        prompt_tokens=rec.prompt_tokens,
                        completion_tokens=rec.completion_tokens,
                        reasoning_tokens=rec.reasoning_tokens,
                        cached_tokens=rec.cached_tokens,
                        latency_ms=rec.latency_ms,
                        outcome=rec.outcome,
                        error=(rec.error or None) and rec.error[:4000],
                        prompt_hash=rec.prompt_hash,
                        job_id=rec.job_id,
                        source_id=rec.source_id,
                    )
                )
        except Exception as exc:
            log.warning("could not record a model call (%s)", exc)

    return record


def build_model_client(
    settings: Settings,
    urls: list[str],
    recorder: Callable[[CallRecord], None],
    *,
    model: str | None = None,
    session_factory: sessionmaker[Session] | None = None,
    shared_state_url: str | None = None,
) -> ModelClient:
    """The model client for ``urls`` (in fallback order) with every knob from ``settings.llm``.

    With ``session_factory`` the retry budget is the ledger's, shared by every process on it; without,
    it is this process's own. With ``shared_state_url`` (a Redis URL) the endpoints' circuit breakers
    keep their state there, shared by every worker on every host; without, each process has its own.
    """
    from store.retry_budget import LedgerRetryBudget
    from synth.budget import InMemoryRetryBudget
    from synth.client import Endpoint, ModelClient, Sampling, Timeouts
    from synth.metrics import default_metrics

    llm = settings.llm
    endpoints = [
        Endpoint(url, model or llm.model, api_key=llm.api_key, dialect=llm.dialect, label=llm.server_label or "")
        for url in urls
    ]
    return ModelClient(
        endpoints,
        sampling=Sampling(
            temperature=llm.temperature, top_p=llm.top_p, seed=llm.seed, max_tokens=llm.max_output_tokens
        ),
        timeouts=Timeouts(connect_s=llm.connect_timeout_s, read_s=llm.read_timeout_s, total_s=llm.total_timeout_s),
        context_tokens=llm.context_tokens,
        max_retries=llm.max_retries,
        breaker_failures=llm.breaker_failures,
        breaker_reset_s=llm.breaker_reset_s,
        breakers=_shared_breakers(shared_state_url, urls, llm.breaker_failures, llm.breaker_reset_s),
        thinking=llm.thinking,
        retry_budget=(
            LedgerRetryBudget(session_factory, llm.retry_budget_ratio)
            if session_factory is not None
            else InMemoryRetryBudget(llm.retry_budget_ratio)
        ),
        recorder=recorder,
        metrics=default_metrics(),
    )


def _shared_breakers(url: str | None, endpoints: list[str], failures: int, reset_s: float) -> list[Any] | None:
    """Redis-backed breakers, one per endpoint, when ``url`` names a Redis; else None (per process)."""
    if url is None:
        return None
    import redis

    from synth.shared_breaker import RedisCircuitBreaker

    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    return [RedisCircuitBreaker(client, endpoint, failures, reset_s) for endpoint in endpoints]


class Wiring:
    """Everything one process needs, built lazily from ``settings``.

    Args:
        settings: validated settings.
        celery_app: an app to reuse (a worker passes the app it runs); default: built from settings.
    """

    def __init__(self, settings: Settings, *, celery_app: Celery | None = None) -> None:
        self.settings = settings
        self._celery = celery_app
        self._closers: list[Callable[[], None]] = []
        if settings.faults:  # crash tests only (LORE_FAULTS): arm the named crash points in this process
            from store.faults import arm

            arm(settings.faults, marker_dir=(settings.paths.data_dir / "faults").resolve())

    # --- storage ------------------------------------------------------------------------------

    @cached_property
    def engine(self) -> Engine:
        from store.db import make_engine

        engine = make_engine(
            self.settings.database_url,
            busy_timeout_ms=self.settings.database.busy_timeout_ms,
            echo=self.settings.database.echo,
        )
        self._closers.append(engine.dispose)
        return engine

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        from store.db import make_session_factory

        return make_session_factory(self.engine)

    @property
    def shared_state_url(self) -> str | None:
        """The Redis URL state shared across hosts lives in (breakers, rate limits), or None.

        It is the broker when the broker is Redis; on the embedded runtime such state is per process.
        """
        url = self.settings.broker_url
        return url if url.startswith(("redis://", "rediss://")) else None

    @cached_property
    def store(self) -> GitStore:
        """The git page store; the repository is created on first use."""
        from store.git_store import GitStore

        g = self.settings.git
        store = GitStore(
            self.settings.paths.repo,
            branch=g.branch,
            author_name=g.author_name,
            author_email=g.author_email,
            lock_timeout_ms=g.lock_timeout_ms,
            max_rebases=g.max_rebases,
            refresh_worktree=g.refresh_worktree,
            remote_url=g.remote_url,
            fetch_interval_s=g.fetch_interval_s,
        )
        store.init()
        return store

    # --- queue --------------------------------------------------------------------------------

    @property
    def celery(self) -> Celery:
        if self._celery is None:
            from workers.celery_app import make_celery

            w = self.settings.worker
            self.settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
            self._celery = make_celery(
                self.settings.broker_url,
                visibility_timeout_s=w.visibility_timeout_s,
                soft_time_limit_s=w.soft_time_limit_s,
                time_limit_s=w.time_limit_s,
                max_tasks_per_child=w.max_tasks_per_child,
                sweep_interval_s=w.sweep_interval_s,
                beat_schedule_filename=str((self.settings.paths.data_dir / "celerybeat-schedule").resolve()),
            )
        return self._celery

    def prepare_broker(self) -> None:
        """Create the embedded broker's tables and declare the queues (once, before workers start)."""
        from workers.embedded_broker import prepare

        prepare(self.celery)

    def dispatch(self, job_ids: list[int]) -> None:
        """Send committed jobs to their queues (never raises for a broker failure; the sweep catches up)."""
        from workers.sweep import dispatch_jobs

        dispatch_jobs(self.celery, self.session_factory, job_ids)

    def sweep(self, *, release_dead: bool = False) -> int:
        """Re-send due and stuck jobs; returns how many messages were sent."""
        from workers.embedded_broker import purge_delivered
        from workers.sweep import sweep

        result = sweep(self.celery, self.session_factory, release_dead=release_dead)
        purge_delivered(str(self.celery.conf.broker_url))
        return result.sent

    def queue_ping(self) -> None:
        """Raise when the broker cannot be reached."""
        with self.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    # --- model --------------------------------------------------------------------------------

    @cached_property
    def model_client(self) -> ModelClient:
        client = build_model_client(
            self.settings,
            model_urls(self.settings),
            make_recorder(self.session_factory),
            session_factory=self.session_factory,
            shared_state_url=self.shared_state_url,
        )
        self._closers.append(client.close)
        return client

    def model_health(self) -> str:
        """``ok`` when the first reachable endpoint lists models, else ``degraded`` (cached 10 s)."""
        now = time.monotonic()
        cached = getattr(self, "_health", None)
        if cached is not None and now - cached[0] < 10.0:
            return str(cached[1])
        import httpx

        state = "degraded"
        for url in model_urls(self.settings):
            try:
                resp = httpx.get(
                    url.rstrip("/") + "/models",
                    headers={"Authorization": f"Bearer {self.settings.llm.api_key}"},
                    timeout=2.0,
                )
                if resp.status_code == 200:
                    state = "ok"
                    break
            except httpx.HTTPError:
                continue
        self._health = (now, state)
        return state

    # --- search -------------------------------------------------------------------------------

    @cached_property
    def embedder(self) -> Any | None:
        """The sentence embedder (loads its model on first use), or None when it is not installed."""
        from search.embedding import SentenceTransformerEmbedder
        from search.errors import EmbeddingUnavailable

        try:
            return SentenceTransformerEmbedder(
                self.settings.embedding.model_path,
                batch_size=self.settings.embedding.batch_size,
                threads=self.settings.embedding.torch_threads or None,
            )
        except EmbeddingUnavailable as exc:
            log.warning("embeddings unavailable (%s); search falls back to text only", exc)
            return None

    @cached_property
    def search(self) -> Any | None:
        """The hybrid search index, or None without an embedder (``/query`` then answers from pages)."""
        from search.index import SearchIndex

        if self.embedder is None:
            return None
        return SearchIndex(self.engine, self.embedder)

    # --- services -----------------------------------------------------------------------------

    def synth_deps(self) -> SynthDeps:
        """The synthesis dependencies for ``synth.service.run_job`` in this process."""
        from synth.deps import SynthDeps
        from workers.sweep import worker_id

        w = self.settings.worker
        return SynthDeps(
            session_factory=self.session_factory,
            store=self.store,
            client=self.model_client,
            embedder=self.embedder,
            search=self.search,
            dispatch=self.dispatch,
            worker_id=worker_id(),
            lease_s=w.lease_s,
            chunk_tokens=self.settings.ingest.chunk_tokens,
            catalog_debounce_s=w.catalog_debounce_s,
            max_attempts=w.max_attempts,
        )

    def intake_file(self, path: Path, *, root: Path | None = None) -> IntakeResult:
        """Take one file in (the intake service) in one unit of work; the caller dispatches ``job_ids``.

        Args:
            path: the file.
            root: the folder it was found in (its relative path becomes the origin); None for a lone file.
        """
        from ingest.service import intake_file
        from store.db import unit_of_work

        ing = self.settings.ingest
        with unit_of_work(self.session_factory) as session:
            return intake_file(
                session,
                self.store,
                path,
                root=root,
                max_bytes=ing.max_bytes,
                parser_timeout_s=ing.parser_timeout_s,
                parser_memory_mb=ing.parser_memory_mb,
            )

    def ingest_path(self, path: Path, *, root: Path | None = None) -> IntakeResult:
        """Take one file in, then dispatch the jobs it created (enqueue after commit)."""
        result = self.intake_file(path, root=root)
        if result.job_ids:
            self.dispatch(list(result.job_ids))
        return result

    def retract_deleted(self, path: Path, *, root: Path) -> str | None:
        """Retract the document of a file deleted from the ingest folder ``root``; returns its source id.

        Nothing happens while the file exists or when no current source has its name. The retraction
        job is dispatched after the commit.
        """
        from ingest.service import deleted_source
        from store.db import unit_of_work
        from synth.lifecycle import request_retraction

        with unit_of_work(self.session_factory) as session:
            src = deleted_source(session, path, root=root)
            if src is None:
                return None
            source_id = src.id
            job_id = request_retraction(session, source_id, max_attempts=self.settings.worker.max_attempts).id
        log.info("retracting %s (%s): its file was deleted", path, source_id[:12])
        self.dispatch([job_id])
        return source_id

    def ingest_root_for(self, path: Path) -> Path | None:
        """The ingest folder when ``path`` lies inside it (its origin is then relative to it), else None."""
        folder = self.settings.paths.ingest_dir.resolve()
        try:
            Path(path).resolve().relative_to(folder)
        except ValueError:
            return None
        return folder

    def worker_context(self) -> WorkerContext:
        """What the Celery tasks of this process need."""
        from workers.tasks import WorkerContext

        def intake(path: Path) -> list[int]:
            # A message names the file; only files inside the ingest folder are ever read this way.
            root = self.ingest_root_for(path)
            if root is None:
                raise ValueError(f"ingest.file refuses {path}: it is not inside {self.settings.paths.ingest_dir}")
            return list(self.intake_file(path, root=root).job_ids)

        return WorkerContext(
            synth=self.synth_deps(), intake_file=intake, sweep=lambda: self.sweep(), close=self.close
        )

    def api_app(self) -> Any:
        """The FastAPI application (``api.app.create_app``) wired to this process's collaborators."""
        from api.app import create_app
        from api.deps import ApiDeps, IntakeLimits

        s = self.settings
        from search.index import SearchIndex
        from store.db import make_session_factory, read_only

        readers = read_only(self.engine)  # deferred BEGIN: API reads never serialise behind each other
        deps = ApiDeps(
            session_factory=make_session_factory(readers),
            store=self.store,
            search=SearchIndex(readers, self.embedder) if self.embedder is not None else None,
            embedder=self.embedder,
            intake=IntakeLimits(
                max_bytes=s.ingest.max_bytes,
                parser_timeout_s=s.ingest.parser_timeout_s,
                parser_memory_mb=s.ingest.parser_memory_mb,
            ),
            dispatch=self.dispatch,
            open_reads=s.api.open_reads,
            api_keys=list(s.api.api_keys),
            max_upload_bytes=s.api.max_upload_bytes,
            uploads_per_minute=s.api.uploads_per_minute,
            rate_limit_storage=self.shared_state_url or "memory://",
            model_health=self.model_health,
            queue_ping=self.queue_ping,
            mcp_allowed_hosts=list(s.api.mcp_allowed_hosts) or None,
            cors_origins=list(s.api.cors_origins),
            metrics_dir=s.metrics_dir,
            session_secret=self.session_secret(),
            session_max_age_s=s.api.session_max_age_s,
        )
        return create_app(deps)

    def session_secret(self) -> str:
        """The web UI's cookie-signing secret: ``LORE_API__SESSION_SECRET``, else the one generated into
        ``<data_dir>/session.key`` on first use (so logins survive a restart)."""
        from api.session import load_or_create_secret

        configured = self.settings.api.session_secret
        if configured is not None:
            return configured.get_secret_value()
        return load_or_create_secret(self.settings.paths.data_dir / "session.key")

    def close(self) -> None:
        """Release engines and HTTP clients built so far."""
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception as exc:  # closing is best effort
                log.debug("close failed: %s", exc)


def install_worker_context(settings: Settings, app: Celery) -> None:
    """Register the per-process worker context factory on the tasks module.

    The factory runs lazily in each process that executes a task (a prefork child after its fork),
    so no engine, pool or HTTP client crosses a fork.
    """
    from workers.tasks import set_context_factory

    set_context_factory(lambda: Wiring(settings, celery_app=app).worker_context())
