"""What the API needs, passed in by the composition root (``lore``): plain collaborators, no settings.

``lore`` builds one :class:`ApiDeps` from its settings and hands it to :func:`api.app.create_app`;
tests build one around a temporary repository and database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:  # pragma: no cover
    from store.git_store import GitStore

Dispatch = Callable[[list[int]], None]
"""Sends job ids to the queue; called only after the transaction that created the jobs committed."""


def _no_dispatch(job_ids: list[int]) -> None:
    """Default: jobs stay in the table and the workers' sweep finds them."""


def _model_ok() -> str:
    return "ok"


@dataclass
class IntakeLimits:
    """Limits the intake service applies to one document (from the ingest settings)."""

    max_bytes: int = 50 * 1024 * 1024
    parser_timeout_s: float = 60.0
    parser_memory_mb: int = 1024


@dataclass
class ApiDeps:
    """Collaborators of the API.

    Attributes:
        session_factory: opens ledger sessions; a request's session is committed or rolled back by
            the route that opened it.
        store: the git page store; the API only reads from it (blobs at HEAD).
        search: the search index (``search.index.SearchIndex``), or None when search is not set up:
            ``/query`` then answers from entity pages only (tier 1).
        embedder: the sentence embedder the index was built with (used by reindexing).
        intake: limits handed to the intake service on upload.
        dispatch: sends job ids to the queue after the upload's transaction committed.
        open_reads: when True, read routes need no API key.
        api_keys: bootstrap keys ``name:scope1+scope2:secret``, stored hashed at start-up.
        max_upload_bytes: uploads are refused with 413 as soon as the body passes this size.
        uploads_per_minute: per key (or per client address when reads are open) upload rate limit.
        rate_limit_storage: where the upload counters live: ``memory://`` (this process) or a Redis
            URL shared by every API replica.
        model_health: returns ``"ok"`` or ``"degraded"`` (model server down or breaker open).
        queue_ping: raises when the queue broker is unreachable; None means no separate queue.
        breaker_state: returns ``closed``/``half_open``/``open`` for ``/metrics``; None derives it
            from ``model_health``.
        mcp_allowed_hosts: ``Host`` header patterns the MCP endpoint accepts besides loopback
            (DNS-rebinding protection, :func:`api.mcp_server.transport_security`); None or empty
            accepts loopback names only, ``["*"]`` any.
        cors_origins: browser origins allowed cross-site (CORS); empty adds no CORS headers.
        session_secret: signs the web UI's login cookies; every API replica needs the same one. None:
            a random secret for this app only (logins end when it restarts).
        session_max_age_s: how long a web UI login lasts.
        metrics_dir: the multiprocess Prometheus folder the workers write to (``/metrics`` sums it);
            None: this process's own model metrics only.
        extra: anything else a caller wants to carry (not used by the API itself).
    """

    session_factory: sessionmaker[Session]
    store: GitStore
    search: Any | None = None
    embedder: Any | None = None
    intake: IntakeLimits = field(default_factory=IntakeLimits)
    dispatch: Dispatch = _no_dispatch
    open_reads: bool = True
    api_keys: list[str] = field(default_factory=list)
    max_upload_bytes: int = 50 * 1024 * 1024
    uploads_per_minute: int = 60
    rate_limit_storage: str = "memory://"
    model_health: Callable[[], str] = _model_ok
    queue_ping: Callable[[], None] | None = None
    breaker_state: Callable[[], str] | None = None
    mcp_allowed_hosts: list[str] | None = None
    cors_origins: list[str] = field(default_factory=list)
    metrics_dir: Path | None = None
    session_secret: str | None = None
    session_max_age_s: int = 12 * 3600
    extra: dict[str, Any] = field(default_factory=dict)
