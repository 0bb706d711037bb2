"""Prometheus metrics of model calls, observed where the calls are made (the workers' model clients).

- ``lore_model_call_duration_seconds{stage,outcome}``: latency of each attempt (histogram);
- ``lore_model_call_tokens{stage,kind}``: prompt and completion tokens per attempt (histogram);
- ``lore_worker_breaker_state{endpoint}``: the circuit breaker of each endpoint as this process's
  client sees it, 0 closed, 1 half-open, 2 open.

They live in ``prometheus_client``'s default registry. With ``PROMETHEUS_MULTIPROC_DIR`` set before
``prometheus_client`` is first imported (``lore up`` does it for its children, see
``docs/operations.md``), every process writes them to files there and the API's ``/metrics`` adds them
up across processes; the breaker gauge then shows the worst state any live process holds.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram

from synth.breaker import State

BREAKER_VALUES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300, 600, 900)
TOKEN_BUCKETS = (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


class ModelMetrics:
    """The model-call histograms and the breaker gauge, registered once per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "lore_model_call_duration_seconds",
            "Latency of one model call attempt, by stage and outcome.",
            ("stage", "outcome"),
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.tokens = Histogram(
            "lore_model_call_tokens",
            "Tokens of one model call attempt, by stage and kind (prompt, completion).",
            ("stage", "kind"),
            registry=registry,
            buckets=TOKEN_BUCKETS,
        )
        self.breaker = Gauge(
            "lore_worker_breaker_state",
            "Circuit breaker of a model endpoint in the process making calls: 0 closed, 1 half-open, 2 open.",
            ("endpoint",),
            registry=registry,
            multiprocess_mode="livemax",
        )

    def observe(
        self, stage: str, outcome: str, latency_s: float, prompt_tokens: int, completion_tokens: int
    ) -> None:
        """Record one attempt (an attempt that never reached the server has no latency to record)."""
        if outcome != "breaker_open":
            self.latency.labels(stage, outcome).observe(latency_s)
        if prompt_tokens or completion_tokens:
            self.tokens.labels(stage, "prompt").observe(prompt_tokens)
            self.tokens.labels(stage, "completion").observe(completion_tokens)

    def breaker_state(self, endpoint: str, state: State) -> None:
        self.breaker.labels(endpoint).set(BREAKER_VALUES[state])


_DEFAULT: ModelMetrics | None = None


def default_metrics() -> ModelMetrics:
    """The process-wide instance on ``prometheus_client``'s default registry."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ModelMetrics(REGISTRY)
    return _DEFAULT
