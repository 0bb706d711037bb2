"""The embedded broker (kombu's SQLAlchemy transport on SQLite, with SQLAlchemy 2.1) across processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from workers.embedded_broker import broker_file, purge_delivered
from workers.sweep import queue_backlog

from .conftest import drain, embedded_app

ROOT = Path(__file__).resolve().parents[2]

PRODUCER = textwrap.dedent(
    """
    import sys
    from workers.celery_app import make_celery
    from workers.sweep import send_job
    app = make_celery(sys.argv[1], visibility_timeout_s=3600, soft_time_limit_s=10, time_limit_s=20,
                      max_tasks_per_child=1)
    first = int(sys.argv[2])
    for job_id in range(first, first + 40):
        send_job(app, job_id, "extract" if job_id % 2 else "render")
    """
)


def test_concurrent_producers_in_separate_processes_lose_nothing(tmp_path):
    app = embedded_app(tmp_path / "broker.db")
    url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    assert (sqlite3.connect(tmp_path / "broker.db").execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    procs = [
        subprocess.Popen([sys.executable, "-c", PRODUCER, url, str(first)], cwd=ROOT)
        for first in (0, 1000, 2000, 3000)
    ]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    assert queue_backlog(app) == {"ingest": 0, "synth": 80, "render": 80}
    got = drain(app)
    ids = sorted(args[0] for q in ("synth", "render") for _name, args in got[q])
    assert ids == sorted(first + i for first in (0, 1000, 2000, 3000) for i in range(40))
    assert all(job_id % 2 == 1 for _n, [job_id] in got["synth"])


def test_old_delivered_messages_are_purged_and_waiting_ones_kept(tmp_path):
    app = embedded_app(tmp_path / "broker.db")
    url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    for i in range(5):
        app.send_task("jobs.run", args=[i], queue="synth")
    with app.connection_for_read() as conn:
        for _ in range(3):
            assert conn.default_channel.basic_get("synth", no_ack=True) is not None
    assert purge_delivered(url, older_than_s=3600) == 0  # delivered just now
    with sqlite3.connect(tmp_path / "broker.db") as con:
        con.execute("UPDATE kombu_message SET timestamp = '2000-01-01 00:00:00' WHERE visible = 0")
    assert purge_delivered(url, older_than_s=3600) == 3
    assert queue_backlog(app)["synth"] == 2


def test_broker_file_is_only_for_the_embedded_broker(tmp_path):
    assert broker_file(f"sqla+sqlite:///{tmp_path}/b.db") == tmp_path / "b.db"
    assert broker_file("redis://localhost:6379/0") is None
    assert purge_delivered("redis://localhost:6379/0") == 0
