"""``lore bench corpus``: a wiki built from a real document set lints without errors, and every document
ends done or failed with a reason a person understands (the figures themselves are reported, not asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.corpus_bench import corpus_files, run_corpus_bench


def check_outcomes(report: dict) -> None:
    """Every document is accounted for, nothing is left half-done, and the lint finds no error."""
    refused = sum(group["count"] for group in report["refused"])
    assert report["documents"] == report["sources"] + refused + len(report["duplicates"])
    assert report["sources"] == report["done"] + report["failed"]
    assert report["unfinished"] == {}
    assert sum(group["count"] for group in report["failed_reasons"]) == report["failed"]
    for group in report["failed_reasons"] + report["refused"]:
        assert len(group["reason"]) > 15, group
        assert not group["reason"].startswith(("(no reason", "Traceback")), group
    assert set(report["jobs"]) <= {"done", "dead"}
    assert report["lint"]["error_findings"] == []
    assert report["lint"]["errors"] == 0
    assert report["lint"]["by_kind"]["error"] == {}


def test_corpus_files_skip_provenance_files(tmp_path: Path) -> None:
    for name in ("LICENSE", "ORIGIN.txt", "UPSTREAM_README.md", ".hidden.md", "b/two.md", "a.md", "b/c/Alert"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("text\n")
    assert [p.relative_to(tmp_path).as_posix() for p in corpus_files(tmp_path)] == ["a.md", "b/c/Alert", "b/two.md"]
    assert len(corpus_files(tmp_path, limit=2)) == 2
    with pytest.raises(FileNotFoundError):
        corpus_files(tmp_path / "missing")


def test_a_small_set_with_an_empty_hugo_index_page(shared_data: Path) -> None:
    root = shared_data / "ops/prometheus-runbooks/runbooks/etcd"  # seven runbooks and an _index.md of front matter
    report = run_corpus_bench(root, limit=8)
    assert report["documents"] == 8
    check_outcomes(report)
    assert report["done"] == 7
    [failure] = report["failed_reasons"]
    assert failure["examples"] == ["_index.md"]
    assert report["pages"]["source"] == 7
    assert report["pages"]["entity"] > 0
    assert report["lint"]["warnings"] == sum(report["lint"]["by_kind"]["warning"].values())


@pytest.mark.slow
def test_the_whole_ops_set_builds_a_wiki_without_lint_errors(shared_data: Path) -> None:
    root = shared_data / "ops"
    report = run_corpus_bench(root)
    assert report["documents"] == len(corpus_files(root)) > 300
    check_outcomes(report)
    assert report["done"] >= report["documents"] - 20, report["failed_reasons"]
