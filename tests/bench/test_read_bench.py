"""``lore bench read`` end to end on a tiny generated wiki (figures are reported, never asserted)."""

from __future__ import annotations

from pathlib import Path

from bench.read_bench import run_read_bench


def test_read_bench_smoke(tmp_path: Path) -> None:
    report = run_read_bench(pages=40, chunks=120, clients=4, requests=24, duration_s=60, workdir=tmp_path / "w")
    results = report["results"]
    for name in ("pages", "query_tier3", "baseline"):
        assert results[name]["requests"] == 24, name
        assert results[name]["errors"] == 0, name
        assert results[name]["p99_ms"] >= results[name]["p50_ms"] > 0
    assert results["query_sample"]["tier"] == 3
    assert results["query_sample"]["hits"] == 5
    assert set(report["ratio_query_to_baseline"]) == {"p50", "p99", "rps"}
    assert (tmp_path / "w" / "wiki").is_dir()  # a given workdir is kept for inspection
