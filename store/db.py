"""Database engine and sessions.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with ``BEGIN IMMEDIATE`` so
two writers never both read and then fail to upgrade their lock (DESIGN section 2). PostgreSQL uses the
driver's defaults. The boundary that opens a session (request, task) commits or rolls back; services
only flush.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from store import ledger_revision


def make_engine(url: str, *, busy_timeout_ms: int = 30_000, echo: bool = False) -> Engine:
    """Create an engine; for SQLite, create the parent folder and configure WAL and locking."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take over transaction control so BEGIN IMMEDIATE is ours to issue.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writers take the write lock up front; read-only engines (``read_only``) use a deferred
            # BEGIN so readers never queue behind each other or behind a writer (WAL snapshots).
            if conn.get_execution_options().get(READ_ONLY_OPTION):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True)


READ_ONLY_OPTION = "lore_read_only"


def read_only(engine: Engine) -> Engine:
    """The same engine and pool, for sessions that mostly read (API requests, search queries).

    On SQLite their transactions begin deferred; a rare write in one (an upload) upgrades its lock and may
    meet ``database is locked`` under contention, which the API answers with 503 and ``Retry-After``.
    """
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ``engine``; their commits move the ledger revisions (:mod:`store.ledger_revision`)."""
    ledger_revision.install()
    return sessionmaker(engine, expire_on_commit=False)


def ping(factory: sessionmaker[Session]) -> None:
    """Run a trivial query (readiness checks); raises whatever the database raises."""
    with factory() as session:
        session.execute(text("SELECT 1"))


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


ledger_revision.install()
