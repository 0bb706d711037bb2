"""The Celery application: configuration only, no settings read here.

The composition root (``lore.wiring``) calls :func:`make_celery` with values from the settings. The
configuration follows from one rule: the jobs table is the truth about work, a queue message is only a
hint to look there. So messages are acknowledged late (after the task ran) and rejected when the
worker process dies, one message is prefetched at a time, a task's hard time limit stays below the
broker's visibility timeout (a still-running task is never redelivered), and worker children are
recycled after a bounded number of tasks. Messages are JSON only: task arguments are ids.

Queues: ``ingest`` (intake and the sweep), ``synth`` (extraction, the long model calls) and ``render``
(render, source page, catalog, retract: model calls plus git writes). :data:`KIND_QUEUES` maps a job's
kind to its queue; :func:`queue_for_kind` is what dispatch and the sweep use. The embedded broker
(``sqla+sqlite:///...``) runs on :mod:`workers.embedded_broker`'s transport.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

QUEUES: tuple[str, ...] = ("ingest", "synth", "render")
KIND_QUEUES: dict[str, str] = {
    "extract": "synth",
    "render": "render",
    "source_page": "render",
    "catalog": "render",
    "retract": "render",
    "intake": "ingest",
}
TASK_ROUTES: dict[str, dict[str, str]] = {
    "ingest.file": {"queue": "ingest"},
    "jobs.sweep": {"queue": "ingest"},
    # "jobs.run" is routed per message by the job's kind (see queue_for_kind); synth is its default.
    "jobs.run": {"queue": "synth"},
}
SWEEP_ENTRY = "sweep-due-and-stuck-jobs"
DEFAULT_QUEUE = "synth"


def queue_for_kind(kind: str) -> str:
    """The queue a job of ``kind`` runs on; a kind not listed in :data:`KIND_QUEUES` runs on ``synth``.

    An unknown kind is never dropped: ``synth.service.run_job`` records it as a failure in the jobs table.
    """
    return KIND_QUEUES.get(kind, DEFAULT_QUEUE)


def is_embedded_broker(broker_url: str) -> bool:
    """True for the local SQLite-backed broker (kombu's SQLAlchemy transport on a SQLite file)."""
    return broker_url.startswith(("sqla+sqlite", "sqlalchemy+sqlite"))


def transport_options(broker_url: str, visibility_timeout_s: int) -> dict[str, Any]:
    """Broker transport options for ``broker_url``.

    Redis (and SQS) redeliver an unacknowledged message after ``visibility_timeout``. The embedded
    broker has no visibility timeout (a message taken by a process that then died is lost, and the
    sweep re-sends its job); it only gets its polling interval.
    """
    if is_embedded_broker(broker_url):
        from workers.embedded_broker import POLLING_INTERVAL_S

        return {"polling_interval": POLLING_INTERVAL_S}
    if broker_url.startswith(("redis", "rediss", "sentinel", "sqs")):
        return {"visibility_timeout": visibility_timeout_s}
    return {}


def make_celery(
    broker_url: str,
    *,
    visibility_timeout_s: int,
    soft_time_limit_s: int,
    time_limit_s: int,
    max_tasks_per_child: int,
    sweep_interval_s: float = 15.0,
    beat_schedule_filename: str | None = None,
    name: str = "lore",
) -> Celery:
    """Build the Celery app with Lore's tasks registered.

    Args:
        broker_url: ``redis://...`` in production; ``sqla+sqlite:///<file>`` for the embedded broker.
        visibility_timeout_s: how long the broker waits for an acknowledgement before redelivering.
        soft_time_limit_s: a task gets ``SoftTimeLimitExceeded`` after this long.
        time_limit_s: the worker child running a task is killed after this long.
        max_tasks_per_child: worker children are replaced after this many tasks.
        sweep_interval_s: how often beat sends ``jobs.sweep``.
        beat_schedule_filename: where beat keeps its schedule state (default: Celery's, in the cwd).
        name: the app's main name.

    Raises:
        ValueError: when the time limits do not fit below the visibility timeout.
    """
    if not 0 < soft_time_limit_s < time_limit_s < visibility_timeout_s:
        raise ValueError(
            "need 0 < soft_time_limit_s < time_limit_s < visibility_timeout_s, got "
            f"{soft_time_limit_s}, {time_limit_s}, {visibility_timeout_s}"
        )
    embedded = is_embedded_broker(broker_url)
    if embedded:
        from workers.embedded_broker import TRANSPORT, engine_url, install_fork_guard

        install_fork_guard()
        app = Celery(name, broker=engine_url(broker_url), set_as_current=False)
        app.conf.broker_transport = TRANSPORT
    else:
        app = Celery(name, broker=broker_url, set_as_current=False)
    exchange = Exchange("lore", type="direct")
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=soft_time_limit_s,
        task_time_limit=time_limit_s,
        worker_max_tasks_per_child=max_tasks_per_child,
        broker_transport_options=transport_options(broker_url, visibility_timeout_s),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_queues=tuple(Queue(q, exchange, routing_key=q) for q in QUEUES),
        task_default_queue=DEFAULT_QUEUE,
        task_default_exchange="lore",
        task_default_routing_key=DEFAULT_QUEUE,
        task_routes=TASK_ROUTES,
        task_create_missing_queues=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        enable_utc=True,
        timezone="UTC",
        beat_schedule={
            SWEEP_ENTRY: {"task": "jobs.sweep", "schedule": timedelta(seconds=sweep_interval_s)},
        },
    )
    if beat_schedule_filename:
        app.conf.beat_schedule_filename = beat_schedule_filename
    from workers import tasks

    tasks.register(app)
    return app
