"""Prometheus metrics: HTTP traffic measured in-process, the rest read from the ledger at scrape time.

Each app gets its own ``CollectorRegistry`` (several apps in one process, as in tests, never clash).
The ledger collector runs a handful of ``GROUP BY`` queries per scrape, so the figures are the truth
shared by every process (workers write the ledger; the API only reads it):

- ``lore_http_requests_total{method,route,status}`` and ``lore_http_request_duration_seconds``;
- ``lore_queue_depth`` (jobs due to run now) and ``lore_jobs{state}``;
- ``lore_model_calls_total{stage,outcome}``, ``lore_model_tokens_total{stage,kind}``;
- ``lore_page_conflicts_total``: jobs whose last recorded error is a page conflict (a conflict the render
  flow retried successfully inline leaves no trace in the ledger, so this counts the ones that were not
  resolved that way); ``lore_sources{status}``, ``lore_claims{status}``, ``lore_contradictions_open``;
- ``lore_model_breaker_state`` (0 closed, 1 half-open, 2 open) as the API sees the model server;
- the API process's own ``process_*``, ``python_gc_*`` and ``python_info``;
- the model-call histograms and the breaker gauge the workers observe (:mod:`synth.metrics`):
  ``lore_model_call_duration_seconds``, ``lore_model_call_tokens``, ``lore_worker_breaker_state``.
  With a multiprocess folder (``LORE_METRICS_DIR``) they are summed over every process writing there;
  without, they are this process's own (the API then sees the calls it made itself, if any).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store.queries import ledger_figures

log = logging.getLogger(__name__)

BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class HttpMetrics:
    """Request counter and latency histogram registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "lore_http_requests", "HTTP requests served.", ("method", "route", "status"), registry=registry
        )
        self.latency = Histogram(
            "lore_http_request_duration_seconds",
            "Time to serve an HTTP request (until the response started).",
            ("method", "route"),
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


class MetricsMiddleware:
    """Pure ASGI middleware that counts requests per route template (never per raw path)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/mcp" if scope["path"].startswith("/mcp") else "unmatched")
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status["code"])).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)


class LedgerCollector(Collector):
    """Reads work, model and content figures from the ledger at each scrape."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        breaker_state: Callable[[], str],
    ) -> None:
        self.session_factory = session_factory
        self.breaker_state = breaker_state

    def describe(self) -> list[Metric]:
        return []  # collected lazily: no database query at registration time

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._ledger_metrics()
        except Exception as exc:  # a scrape must not fail because the database is briefly locked
            log.warning("ledger metrics unavailable: %r", exc)
        breaker = GaugeMetricFamily(
            "lore_model_breaker_state", "Model circuit breaker: 0 closed, 1 half-open, 2 open.", labels=["state"]
        )
        state = self.breaker_state()
        breaker.add_metric([state], BREAKER_VALUES.get(state, 2))
        yield breaker

    def _ledger_metrics(self) -> Iterator[Metric]:
        with self.session_factory() as session:
            figures = ledger_figures(session)
        yield GaugeMetricFamily(
            "lore_queue_depth", "Jobs due to run now (queued or waiting to retry).", value=figures.queue_depth
        )
        jobs = GaugeMetricFamily("lore_jobs", "Jobs per state.", labels=["state"])
        for state, n in figures.jobs.items():
            jobs.add_metric([state], n)
        yield jobs
        calls = CounterMetricFamily(
            "lore_model_calls", "Model calls per stage and outcome.", labels=["stage", "outcome"]
        )
        for (stage, outcome), n in figures.model_calls.items():
            calls.add_metric([stage, outcome], n)
        tokens = CounterMetricFamily("lore_model_tokens", "Model tokens per stage and kind.", labels=["stage", "kind"])
        for (stage, kind), n in figures.model_tokens.items():
            tokens.add_metric([stage, kind], n)
        yield calls
        yield tokens
        yield CounterMetricFamily(
            "lore_page_conflicts", "Jobs whose last error was a page conflict.", value=figures.page_conflicts
        )
        for name, doc, counts in (
            ("lore_sources", "Sources per status.", figures.sources),
            ("lore_claims", "Claims per status.", figures.claims),
        ):
            family = GaugeMetricFamily(name, doc, labels=["status"])
            for status, n in counts.items():
                family.add_metric([status], n)
            yield family
        yield GaugeMetricFamily(
            "lore_contradictions_open", "Open disputes between sources.", value=figures.open_disputes
        )


MODEL_FAMILIES = ("lore_model_call_duration_seconds", "lore_model_call_tokens", "lore_worker_breaker_state")


class _ProcessModelMetrics(Collector):
    """This process's model-call metrics (from the default registry), when no multiprocess folder is used."""

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            if family.name in MODEL_FAMILIES:
                yield family


def register_runtime_collectors(registry: CollectorRegistry, multiproc_dir: Path | None) -> None:
    """Add the process, GC and platform collectors and the workers' model metrics to ``registry``."""
    for collector in (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR):
        registry.register(collector)
    if multiproc_dir is not None:
        from prometheus_client.multiprocess import MultiProcessCollector

        multiproc_dir.mkdir(parents=True, exist_ok=True)
        MultiProcessCollector(registry, path=str(multiproc_dir))
    else:
        registry.register(_ProcessModelMetrics())


def breaker_from_health(model_health: Callable[[], str]) -> Callable[[], str]:
    """A breaker-state reader for deployments that only know whether the model is healthy."""

    def state() -> str:
        return "closed" if model_health() == "ok" else "open"

    return state
