"""What the synthesis flows need, passed in by the composition root (``lore.wiring``).

Nothing in ``synth`` reads settings; the root builds one ``SynthDeps`` per process and hands it to
``synth.service.run_job``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store.git_store import GitStore

Dispatch = Callable[[list[int]], None]
"""Sends job ids to the queue. Called only after the transaction that created the jobs committed."""


def utc_now() -> datetime:
    """The default clock: the system's, in UTC."""
    return datetime.now(UTC)


def _no_dispatch(job_ids: list[int]) -> None:
    """Default for tools that run jobs inline: the jobs stay in the table and the sweep finds them."""


@dataclass
class SynthDeps:
    session_factory: sessionmaker[Session]
    store: GitStore
    client: Any  # synth.client.ModelClient; typed loosely so tools without a model can build deps
    embedder: Any | None = None  # search.embedding.Embedder
    search: Any | None = None  # search.index.SearchIndex
    dispatch: Dispatch = _no_dispatch
    worker_id: str = "inline"
    lease_s: int = 1800
    chunk_tokens: int = 3000
    catalog_debounce_s: float = 2.0
    max_attempts: int = 5
    extra: dict[str, Any] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now  # "today" on pages and catalogs; tests pass a fixed one

    def today(self) -> str:
        """The date pages are stamped with (``updated``), from the injected clock."""
        return self.clock().strftime("%Y-%m-%d")
