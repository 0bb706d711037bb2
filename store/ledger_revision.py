"""Ledger revisions: tokens the writers move, so readers know when what they cached went stale.

Two rows of ``index_state`` (no new schema) hold a token each:

- ``ledger:names``: entities, aliases and page rows changed (what wikilinks resolve against and the
  titles pages are listed under);
- ``ledger:claims``: claims, sources or disputes changed (what a page's JSON cites).

Every ORM session that commits a change to one of those tables gives the matching row a new token in
the same transaction (a ``before_commit`` listener on :class:`~sqlalchemy.orm.Session`, installed when
:mod:`store.db` is imported, so every process that writes the ledger bumps them). Readers fetch both
tokens with one primary-key lookup (:func:`current`) instead of counting rows per request.
Writes that bypass the ORM session (Core statements on a bare connection) do not bump them; the
ledger's writers all go through sessions.

Cost to writers: one ``UPDATE`` of a primary-key row at commit. On PostgreSQL that row lock makes
concurrent committing writers queue for the instant of their commit (the bump runs in
``before_commit``, so the lock is held only from then to the commit). Alternatives that avoid it need
schema (a sequence read with ``last_value``, or a per-table ``updated_at`` index to read ``max()``
from), which this change was not to add.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.orm import Session

from store import search_state
from store.models import Alias, Claim, Contradiction, Entity, IndexState, Page, Source

NAMES, CLAIMS = "ledger:names", "ledger:claims"
_WATCH: tuple[tuple[str, tuple[type, ...]], ...] = (
    (NAMES, (Entity, Alias, Page)),
    (CLAIMS, (Claim, Source, Contradiction)),
)
_FLAG = "lore_ledger_changed"
_T = IndexState.__table__


def _changed(session: Session) -> set[str]:
    touched: set[str] = set()
    objects = [*session.new, *session.dirty, *session.deleted]
    for row, classes in _WATCH:
        if any(isinstance(o, classes) for o in objects):
            touched.add(row)
    return touched


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    touched = _changed(session)
    if touched:
        session.info.setdefault(_FLAG, set()).update(touched)


def _before_commit(session: Session) -> None:
    touched = set(session.info.pop(_FLAG, set())) | _changed(session)
    if not touched:
        return
    conn = session.connection()
    for row in sorted(touched):
        search_state.write(conn, row, commit_id=uuid.uuid4().hex)


def _after_rollback(session: Session) -> None:
    session.info.pop(_FLAG, None)


def install() -> None:
    """Register the listeners on every ORM session (idempotent)."""
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_soft_rollback", _after_rollback_soft)


def _after_rollback_soft(session: Session, _previous: Any) -> None:
    _after_rollback(session)


def current(conn: Connection) -> tuple[str | None, str | None]:
    """(names token, claims token) now; None for a row never written."""
    rows: dict[str, str | None] = {
        str(name): None if value is None else str(value)
        for name, value in conn.execute(select(_T.c.name, _T.c.commit_id).where(_T.c.name.in_((NAMES, CLAIMS))))
    }
    return rows.get(NAMES), rows.get(CLAIMS)


_RAW = f"SELECT name, commit_id FROM index_state WHERE name IN ('{NAMES}', '{CLAIMS}')"


def current_fast(engine: Engine) -> tuple[str | None, str | None]:
    """:func:`current` through a pooled DBAPI connection (no statement compilation: tens of microseconds).

    The statement is a constant (no parameters), so it reads the same on SQLite and PostgreSQL; the pool
    rolls the connection back when it is returned.
    """
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute(_RAW)
            rows = {str(name): None if value is None else str(value) for name, value in cursor.fetchall()}
        finally:
            cursor.close()
    finally:
        raw.close()
    return rows.get(NAMES), rows.get(CLAIMS)
