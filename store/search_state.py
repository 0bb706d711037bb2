"""Bookkeeping rows of the search index in ``index_state``.

- ``search:fts``: ``commit_id`` holds the analyzer version the full-text table was built with;
- ``search:embedder``: ``embedder`` holds the name of the embedder that made the stored vectors;
- ``search:<kind>``: ``commit_id`` holds a generation token, changed by every write to that kind, so
  each process knows when its in-memory vectors are stale.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, select, update
from sqlalchemy import insert as sa_insert

from store.models import IndexState, utcnow

_T = IndexState.__table__


def read(conn: Connection, name: str) -> tuple[str | None, str | None] | None:
    """``(commit_id, embedder)`` of a row, or None when absent."""
    row = conn.execute(select(_T.c.commit_id, _T.c.embedder).where(_T.c.name == name)).first()
    return None if row is None else (row[0], row[1])


def write(conn: Connection, name: str, *, commit_id: str | None = None, embedder: str | None = None) -> None:
    """Create or update a row; ``None`` leaves a field as it is."""
    values: dict[str, object] = {"updated_at": utcnow()}
    if commit_id is not None:
        values["commit_id"] = commit_id
    if embedder is not None:
        values["embedder"] = embedder
    if conn.execute(update(IndexState).where(_T.c.name == name).values(**values)).rowcount:
        return
    conn.execute(sa_insert(IndexState).values(name=name, **values))


def generations(conn: Connection, kinds: Sequence[str]) -> dict[str, str | None]:
    """Current generation token of each kind (None: never written)."""
    names = {f"search:{k}": k for k in kinds}
    rows = conn.execute(select(_T.c.name, _T.c.commit_id).where(_T.c.name.in_(list(names))))
    found = {names[r[0]]: r[1] for r in rows}
    return {k: found.get(k) for k in kinds}


def touch(conn: Connection, kinds: Iterable[str]) -> None:
    """Give each kind a new generation token (call inside the writing transaction)."""
    for kind in sorted(set(kinds)):
        write(conn, f"search:{kind}", commit_id=uuid.uuid4().hex)
