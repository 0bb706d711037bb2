"""The Celery configuration: the values that make a lost message or a dead worker harmless."""

from __future__ import annotations

import pytest

from store.models import JOB_KINDS
from workers.celery_app import KIND_QUEUES, QUEUES, make_celery, queue_for_kind, transport_options
from workers.embedded_broker import POLLING_INTERVAL_S
from workers.sweep import send_job

from .conftest import drain


def _app(url: str = "redis://127.0.0.1:1/0", **overrides):
    kwargs = {"visibility_timeout_s": 3600, "soft_time_limit_s": 1500, "time_limit_s": 1800, "max_tasks_per_child": 200}
    kwargs.update(overrides)
    return make_celery(url, **kwargs)


def test_reliability_settings():
    conf = _app().conf
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit == 1500
    assert conf.task_time_limit == 1800
    assert conf.worker_max_tasks_per_child == 200
    assert conf.broker_connection_retry_on_startup is True
    assert conf.broker_transport_options == {"visibility_timeout": 3600}
    assert conf.task_soft_time_limit < conf.task_time_limit < conf.broker_transport_options["visibility_timeout"]


def test_named_queues_and_routes():
    conf = _app().conf
    assert [q.name for q in conf.task_queues] == list(QUEUES) == ["ingest", "synth", "render"]
    assert conf.task_routes["ingest.file"] == {"queue": "ingest"}
    assert conf.task_routes["jobs.sweep"] == {"queue": "ingest"}
    assert conf.task_create_missing_queues is False


def test_every_job_kind_has_its_queue():
    assert set(JOB_KINDS) <= set(KIND_QUEUES), "a job kind has no queue in workers.celery_app.KIND_QUEUES"
    assert queue_for_kind("extract") == "synth"
    for kind in ("render", "catalog", "retract"):
        assert queue_for_kind(kind) == "render"
    assert queue_for_kind("intake") == "ingest"
    assert queue_for_kind("something-new") == "synth"  # never dropped


def test_tasks_are_registered_by_domain_verb_name():
    app = _app()
    app.finalize()
    assert {"jobs.run", "ingest.file", "jobs.sweep"} <= set(app.tasks)


def test_beat_sends_the_sweep_on_the_configured_interval():
    app = _app(sweep_interval_s=7.5)
    entry = next(iter(app.conf.beat_schedule.values()))
    assert entry["task"] == "jobs.sweep"
    assert entry["schedule"].total_seconds() == 7.5


@pytest.mark.parametrize(
    ("soft", "hard", "visibility"),
    [(1800, 1800, 3600), (1500, 3600, 3600), (2000, 1800, 3600), (0, 10, 3600)],
)
def test_time_limits_must_fit_below_the_visibility_timeout(soft, hard, visibility):
    with pytest.raises(ValueError, match="visibility_timeout"):
        _app(soft_time_limit_s=soft, time_limit_s=hard, visibility_timeout_s=visibility)


def test_embedded_broker_runs_on_lores_transport_and_never_gets_redis_options(tmp_path):
    url = f"sqla+sqlite:///{tmp_path}/b.db"
    assert transport_options(url, 3600) == {"polling_interval": POLLING_INTERVAL_S}
    conf = make_celery(
        url, visibility_timeout_s=3600, soft_time_limit_s=10, time_limit_s=20, max_tasks_per_child=1
    ).conf
    assert conf.broker_transport == "workers.embedded_broker:Transport"
    assert conf.broker_url == f"sqlite:///{tmp_path}/b.db"
    assert "visibility_timeout" not in conf.broker_transport_options


def test_explicit_queue_wins_over_the_default_route(app):
    send_job(app, 1, "extract")
    send_job(app, 2, "render")
    send_job(app, 3, "catalog")
    app.send_task("jobs.sweep")
    got = drain(app)
    assert got["synth"] == [("jobs.run", [1])]
    assert got["render"] == [("jobs.run", [2]), ("jobs.run", [3])]
    assert got["ingest"] == [("jobs.sweep", [])]
