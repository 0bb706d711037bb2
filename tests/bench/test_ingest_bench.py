"""The ingest and contention benchmarks run end to end (their figures are reported, not asserted)."""

from __future__ import annotations

from bench.ingest_bench import run_contention_bench, run_ingest_bench


def test_contention_loses_no_claim():
    r = run_contention_bench(sources=8, workers=4, latency_ms=0)
    assert r["done"] == 8
    assert r["lost_claims"] == 0
    assert r["hot_claims"] >= 8
    assert r["hot_page_renders"] >= 1


def test_ingest_bench_reports_its_fields(shared_data):
    r = run_ingest_bench(shared_data / "ops/dfds-postmortems/docs", limit=3, latency_ms=0)
    assert r["done"] == 3
    for key in ("sources_per_min", "model_calls_per_source", "prompt_tokens_per_source",
                "completion_tokens_per_source", "pages_touched_per_source", "prefix_shared_fraction"):
        assert key in r
    assert r["stages"]["extract"]["calls"] >= 3
