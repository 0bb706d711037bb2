"""Fixtures for the workers tests: a real SQLite ledger and a real Celery app on the embedded broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, make_session_factory
from store.models import Base
from workers.celery_app import QUEUES, make_celery
from workers.embedded_broker import prepare


@pytest.fixture
def factory(tmp_path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'lore.db'}")
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def embedded_app(broker_file) -> Celery:
    app = make_celery(
        f"sqla+sqlite:///{broker_file}",
        visibility_timeout_s=3600,
        soft_time_limit_s=60,
        time_limit_s=120,
        max_tasks_per_child=10,
    )
    prepare(app)
    return app


@pytest.fixture
def app(tmp_path) -> Iterator[Celery]:
    app = embedded_app(tmp_path / "broker.db")
    yield app
    app.close()


def drain(app: Celery) -> dict[str, list[tuple[str, Any]]]:
    """Take every waiting message off Lore's queues: {queue: [(task name, args), ...]}."""
    out: dict[str, list[tuple[str, Any]]] = {q: [] for q in QUEUES}
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        for queue in QUEUES:
            while (message := channel.basic_get(queue, no_ack=True)) is not None:
                body = message.body if isinstance(message.body, str | bytes) else json.dumps(message.body)
                args, _kwargs, _embed = json.loads(body)
                out[queue].append((message.headers["task"], args))
    return out
