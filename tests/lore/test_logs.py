"""JSON log lines carry the ids of the work they belong to; /metrics shows the process and model metrics."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from structlog.contextvars import bound_contextvars

from api.app import create_app
from bench.fake_llm import FakeLLM
from lore.logs import configure_logging
from synth.client import Endpoint, ModelClient
from synth.metrics import ModelMetrics
from synth.prompts import extract
from tests.api.conftest import INGEST_KEY, deps_for
from tests.api.wiki_builder import build_wiki
from tests.services import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    for var in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.setenv(var, "1")  # configure_logging sets them; monkeypatch restores them
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    yield stream
    logging.captureWarnings(False)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_lines_are_json_with_the_bound_ids(json_lines: io.StringIO) -> None:
    log = logging.getLogger("lore.test")
    with bound_contextvars(job_id=7, source_id="ab" * 32):
        log.info("working on %s", "it", extra={"stage": "extract"})
    log.warning("outside")
    first, second = _records(json_lines)
    assert first["event"] == "working on it"
    assert (first["job_id"], first["source_id"], first["stage"], first["level"]) == (7, "ab" * 32, "extract", "info")
    assert first["logger"] == "lore.test"
    assert str(first["timestamp"]).endswith("Z")
    assert "job_id" not in second
    assert "source_id" not in second


def test_request_id_is_on_the_lines_and_in_the_response(json_lines: io.StringIO, tmp_path: Path) -> None:
    fx = build_wiki(tmp_path)
    with TestClient(create_app(deps_for(fx)), raise_server_exceptions=False) as client:
        uploaded = client.post(
            "/sources", headers={"X-Request-ID": "req-123.abc", "Authorization": f"Bearer {INGEST_KEY}"},
            files={"file": ("queue.md", b"# Queue\n\nThe queue keeps 500 messages per tenant.\n")},
        )  # fmt: skip
        made = client.get("/pages")
        hostile = client.get("/pages", headers={"X-Request-ID": "x" * 200})
    assert uploaded.status_code in (200, 202), uploaded.text
    assert uploaded.headers["x-request-id"] == "req-123.abc"
    assert len(made.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "x" * 200  # an unusable id is replaced, not echoed
    intake = [r for r in _records(json_lines) if str(r["event"]).startswith("new queue.md")]
    assert len(intake) == 1
    assert intake[0]["request_id"] == "req-123.abc"
    assert intake[0]["source_id"] == uploaded.json()["source_id"]
    logging.getLogger("probe").info("after")
    assert "request_id" not in _records(json_lines)[-1]


def test_metrics_show_process_collectors_and_model_histograms(tmp_path: Path) -> None:
    fresh_wiki = build_wiki(tmp_path)
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry)
    with FakeLLM() as fake, ModelClient([Endpoint(fake.base_url, "fake-llm")], metrics=metrics) as model:
        model.complete("extract", extract.build_messages(extract.ExtractContext("Redis listens on 6379.")),
                       extract.Extraction)  # fmt: skip
    body = registry_text(registry)
    assert 'lore_model_call_duration_seconds_count{outcome="ok",stage="extract"} 1.0' in body
    assert 'lore_model_call_tokens_count{kind="prompt",stage="extract"} 1.0' in body
    assert f'lore_worker_breaker_state{{endpoint="{fake.base_url}"}} 0.0' in body

    with TestClient(create_app(deps_for(fresh_wiki))) as client:
        scraped = client.get("/metrics").text
    assert "process_cpu_seconds_total" in scraped
    assert "python_gc_collections_total" in scraped
    assert "lore_http_requests_total" in scraped


def registry_text(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LORE_", "PROMETHEUS_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        LORE_PATHS__DATA_DIR=str(tmp_path / "data"),
        LORE_PATHS__INGEST_DIR=str(tmp_path / "inbox"),
        LORE_METRICS_DIR=str(tmp_path / "metrics"),
        LORE_LOG_FORMAT="json",
        COLUMNS="200",
        **extra,
    )
    return env


@pytest.mark.slow
def test_one_ingest_selected_by_source_id_with_jq_and_worker_metrics_in_the_api(tmp_path: Path) -> None:
    """A worker and an API as separate processes sharing a metrics folder, as `lore up` runs them."""
    jq = shutil.which("jq")
    if jq is None:
        from tests.services import apt_install

        apt_install("jq")
        jq = "/usr/bin/jq"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "redis.md").write_text("# Redis\n\nThe Redis cache listens on port 6379 and is owned by the Core team.\n")
    (docs / "kafka.md").write_text("# Kafka\n\nThe Kafka cluster keeps messages for 7 days.\n")
    port = free_port()
    with FakeLLM() as fake:
        env = _env(tmp_path, LORE_LLM__BASE_URL=fake.base_url, LORE_API__PORT=str(port))
        subprocess.run([sys.executable, "-m", "lore", "migrate"], cwd=tmp_path, env=env, check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        worker_log = tmp_path / "worker.log"
        procs = [
            subprocess.Popen([sys.executable, "-m", "lore", "worker", "--pool", "solo", "--no-migrate"], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=worker_log.open("wb")),
            subprocess.Popen([sys.executable, "-m", "lore", "serve", "--no-migrate"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=(tmp_path / "api.log").open("wb")),
        ]  # fmt: skip
        try:
            ingested = subprocess.run(
                [sys.executable, "-m", "lore", "ingest", "--timeout", "300", str(docs)], cwd=tmp_path, env=env,
                capture_output=True, text=True, timeout=360,
            )  # fmt: skip
            assert ingested.returncode == 0, ingested.stdout + ingested.stderr + worker_log.read_text()[-3000:]
            wait_port(port, 120)
            deadline = time.monotonic() + 60
            while True:
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
                if "lore_model_call_duration_seconds_bucket" in metrics or time.monotonic() > deadline:
                    break
                time.sleep(1)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(60)
    assert "process_cpu_seconds_total" in metrics
    assert 'lore_model_call_duration_seconds_count{outcome="ok",stage="extract"}' in metrics
    assert 'lore_model_call_tokens_bucket{kind="completion"' in metrics
    assert "lore_worker_breaker_state{" in metrics

    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'lore.db'}")
    with engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT origin, id FROM sources")).all())
    engine.dispose()
    redis_id, kafka_id = ids["redis.md"], ids["kafka.md"]
    every = [json.loads(line) for line in worker_log.read_text().splitlines() if line.startswith("{")]
    assert len(every) > 10
    selected = subprocess.run(
        [jq, "-c", f'select(.source_id == "{redis_id}")', str(worker_log)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    lines = [json.loads(line) for line in selected]
    events = [str(r["event"]) for r in lines]
    assert any(e.startswith("model call extract") for e in events), events
    assert any("(extract) done" in e for e in events), events
    assert any("(source_page) done" in e for e in events), events
    assert all("job_id" in r for r in lines)
    assert all(r["source_id"] == redis_id for r in lines)
    assert not any(kafka_id in line for line in selected)
    kafka_lines = [r for r in every if r.get("source_id") == kafka_id]
    assert kafka_lines
    assert {r["job_id"] for r in kafka_lines}.isdisjoint({r["job_id"] for r in lines})
