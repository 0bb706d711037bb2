"""What the synthesis flows need, passed in by the composition root (``lore.wiring``).

Nothing in ``synth`` reads settings; the root builds one ``SynthDeps`` per process and hands it to
``synth.service.run_job``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store.git_store import GitStore

Dispatch = Callable[[list[int]], None]
"""Sends job ids to the queue. Called only after the transaction that created the jobs committed."""


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
