"""A smaller `lore bench scale`: three hosts, one central repository, PostgreSQL, Redis, the fake model.

Real processes and services throughout; the test checks the audit's exact end state, never its speed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scale_bench import run_scale_bench

pytestmark = [pytest.mark.services]

SOURCES = 12


def test_three_hosts_converge_on_one_history(tmp_path: Path) -> None:
    figures = run_scale_bench(hosts=3, workers_per_host=2, sources=SOURCES, entities=3, latency_ms=20,
                              timeout_s=240, workdir=tmp_path)

    assert figures["done"] == SOURCES
    assert figures["failed"] == 0
    assert figures["missing_sources"] == 0
    assert figures["duplicates"] == 0
    assert figures["claims"] > 0
    assert figures["claims_not_on_pages"] == 0
    assert figures["lost"] == 0
    assert figures["remote_fsck"] == "ok"
    assert figures["history_linear"] is True
    assert figures["clones_converged"] is True
    assert all(n > 0 for n in figures["pushed_by_host"])  # every host really published to the centre
