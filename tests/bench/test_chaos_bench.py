"""``lore bench chaos``: a short soak of `lore up` with killed workers and a failing model loses nothing.

The figures (reads per second, latency, drain time) are not asserted; the end state is: every dropped
document is ``done`` with its page committed once and its claims on their pages, nothing is stored
twice, ``git fsck`` is clean, reads kept answering.
"""

from __future__ import annotations

import hashlib

import pytest

from bench.chaos_bench import ChaosConfig, pick_documents, run_chaos_bench


def test_documents_are_distinct_bounded_and_seeded(shared_data):
    ops = shared_data / "ops"
    first = pick_documents(ops, 40, seed=3)
    assert first == pick_documents(ops, 40, seed=3)
    assert first != pick_documents(ops, 40, seed=4)
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in first}) == 40
    assert all(p.suffix == ".md" and 400 <= p.stat().st_size <= 30_000 for p in first)
    with pytest.raises(ValueError, match="usable documents"):
        pick_documents(ops, 100_000, seed=3)


@pytest.mark.slow
def test_a_short_soak_loses_nothing_and_stores_nothing_twice(shared_data, tmp_path):
    config = ChaosConfig(duration_s=20, rate_per_min=30, kill_every_s=8, fault_every_s=8, fault_s=3, lease_s=15,
                         drain_timeout_s=180)
    result = run_chaos_bench(shared_data / "ops", config, workdir=tmp_path)
    assert result["sources"] == 10
    assert result["lost"] == 0, (result["lost_files"], result["jobs"])
    assert result["duplicates"] == 0
    assert result["fsck"] == "ok"
    assert result["applied_once"] == result["sources"], result
    assert result["claims_not_on_pages"] == 0
    assert set(result["jobs"]) == {"done"}
    assert result["kills"] >= 1  # the chaos happened
    assert result["model_faults"] == 2
    assert result["reads"] > 0
    assert result["read_errors"] == 0
    assert result["model_calls"] >= result["sources"]
    # A restart of `lore up` (it stops when its worker dies) is allowed: the jobs table carries the work over.
