"""``lore bench read`` end to end on a tiny generated wiki (figures are reported, never asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.read_bench import SCENARIOS, run_read_bench


@pytest.mark.parametrize("generator", ["wrk", "python"])
def test_read_bench_smoke(tmp_path: Path, generator: str) -> None:
    report = run_read_bench(
        pages=40, chunks=120, connections=(1, 2), duration_s=1, workdir=tmp_path / "w", load_generator=generator
    )
    assert report["load_generator"] == generator
    assert ("load_generator_note" in report) == (generator == "python")
    assert set(report["scenarios"]) == set(SCENARIOS)
    for name, runs in report["scenarios"].items():
        assert set(runs) == {"1", "2"}, name
        for n, run in runs.items():
            assert set(run) >= {"requests", "errors", "rps", "p50_ms", "p99_ms"}
            assert run["requests"] > 0, (name, n)
            assert run["errors"] == 0, (name, n)
            assert run["p99_ms"] >= run["p50_ms"] > 0
    assert report["api_rss_mb"] > 0
    assert report["query_sample"]["tier"] == 3
    assert report["query_sample"]["hits"] == 5
    assert (tmp_path / "w" / "wiki").is_dir()  # a given workdir is kept for inspection
