"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file, so ``lore up`` needs no Redis.

The configured URL is ``sqla+sqlite:///<data_dir>/broker.db``. :func:`workers.celery_app.make_celery`
runs it through :class:`Transport` here, a small subclass of kombu's SQLAlchemy transport that differs
in two ways: it polls every :data:`POLLING_INTERVAL_S` instead of every second (a worker whose prefetch
slots are full sleeps one polling interval before it looks again, which would cap fast tasks at about
one per second), and its engine gets a 30 s SQLite busy timeout and nothing else (kombu passes every
transport option to ``create_engine``).

Further details of that transport that matter here:

- it creates its two tables (``kombu_queue``, ``kombu_message``) on first use, and several processes
  doing that at once race; :func:`prepare` creates them once, up front, and switches the file to WAL
  (a persistent property of the file: producers and the consumer then block each other less);
- its engines live in a class-level cache; a prefork child must not reuse the connections it inherited
  from its parent, so :func:`install_fork_guard` makes each child start with an empty pool;
- a delivered message is only marked invisible, never deleted; :func:`purge_delivered` deletes old
  delivered rows (the sweep calls it) so the file does not grow without end;
- it has no visibility timeout: a message taken by a process that died is gone. That is safe because
  the message is only a hint: the job is in the jobs table and the sweep sends it again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import create_engine

log = logging.getLogger(__name__)

TRANSPORT = "workers.embedded_broker:Transport"
POLLING_INTERVAL_S = 0.2
BUSY_TIMEOUT_S = 30
_PREFIXES = ("sqla+", "sqlalchemy+")
_fork_guard_installed = False


class Channel(kombu_sqla.Channel):
    """kombu's SQLAlchemy channel with an engine made for a SQLite file shared by several processes."""

    def _engine_from_config(self) -> Any:
        return create_engine(self.connection.client.hostname, connect_args={"timeout": BUSY_TIMEOUT_S})


class Transport(kombu_sqla.Transport):
    """kombu's SQLAlchemy transport, polling every :data:`POLLING_INTERVAL_S` seconds."""

    Channel = Channel
    polling_interval = POLLING_INTERVAL_S


def engine_url(broker_url: str) -> str:
    """The SQLAlchemy URL inside an embedded broker URL (``sqla+sqlite:///x`` -> ``sqlite:///x``)."""
    for prefix in _PREFIXES:
        if broker_url.startswith(prefix):
            return broker_url.removeprefix(prefix)
    return broker_url


def broker_file(broker_url: str) -> Path | None:
    """The SQLite file behind an embedded broker URL, or None for any other broker."""
    url = engine_url(broker_url)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    return None


def prepare(app: Celery) -> None:
    """Create the embedded broker's file in WAL mode and declare Lore's queues once, up front.

    Declaring the queues makes kombu create its tables now, in one process, instead of in several
    processes at once on their first message. For any other broker this only declares the queues.
    """
    path = broker_file(str(app.conf.broker_url))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=30)
        try:
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in app.conf.task_queues or ():
            queue.bind(channel).declare()


def _reset_kombu_engines() -> None:
    """In a forked child: forget the parent's pooled connections (they stay open for the parent)."""
    for engine, _session in list(kombu_sqla.Channel._engines.values()):
        engine.dispose(close=False)


def install_fork_guard() -> None:
    """Make every child forked from this process start the embedded broker with a fresh pool."""
    global _fork_guard_installed
    if not _fork_guard_installed:
        os.register_at_fork(after_in_child=_reset_kombu_engines)
        _fork_guard_installed = True


def purge_delivered(broker_url: str, *, older_than_s: float = 3600.0) -> int:
    """Delete messages delivered more than ``older_than_s`` ago; returns how many were deleted.

    kombu marks a delivered message invisible and never reads it again (an unacknowledged message is
    re-published as a new row when its channel closes), so old invisible rows are dead weight.
    """
    path = broker_file(broker_url)
    if path is None or not path.exists():
        return 0
    cutoff = (datetime.now() - timedelta(seconds=older_than_s)).isoformat(sep=" ")
    con = sqlite3.connect(path, timeout=30)
    try:
        with con:
            cur = con.execute(
                "DELETE FROM kombu_message WHERE visible = 0 AND (timestamp IS NULL OR timestamp < ?)", (cutoff,)
            )
        return int(cur.rowcount)
    except sqlite3.OperationalError as exc:  # tables not created yet, or locked for longer than the timeout
        log.warning("embedded broker: could not purge delivered messages (%s)", exc)
        return 0
    finally:
        con.close()
