"""`lore ingest PATH...`: files and folders in, each source followed to done/failed, exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.fake_llm import FakeLLM
from lore.ingest_cli import expand

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
    env.update(
        LORE_PATHS__DATA_DIR=str(tmp_path / "data"),
        LORE_PATHS__INGEST_DIR=str(tmp_path / "inbox"),
        COLUMNS="200",
        **extra,
    )
    return env


def _lore(tmp_path: Path, *args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lore.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=timeout,
    )


def test_expand_walks_folders_skips_ignored_names_and_keeps_named_files(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("a")
    (tmp_path / "docs" / "sub" / "b.md").write_text("b")
    (tmp_path / "docs" / ".hidden.md").write_text("h")
    (tmp_path / "docs" / "c.md.tmp").write_text("t")
    (tmp_path / "lone.tmp").write_text("named directly")
    got = list(expand([tmp_path / "docs", tmp_path / "lone.tmp"], [".*", "*.tmp"]))
    root = (tmp_path / "docs").resolve()
    assert got == [(root / "a.md", root), (root / "sub" / "b.md", root), (tmp_path / "lone.tmp", None)]
    with pytest.raises(FileNotFoundError, match="nope"):
        list(expand([tmp_path / "nope"], []))


def test_no_wait_enqueues_and_a_refused_file_fails_the_command(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "runbook.md").write_text("# Restart billing\n\nThe billing service runs on host db-7.\n")
    (docs / "empty.md").write_text("")
    result = _lore(tmp_path, "ingest", "--no-wait", str(docs), env=_env(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "runbook.md" in out
    assert "new (pending)" in out
    assert "empty.md" in out
    assert "refused" in out
    assert "file is empty" in out
    again = _lore(tmp_path, "ingest", "--no-wait", str(docs / "runbook.md"), env=_env(tmp_path))
    assert again.returncode == 0
    assert "known" in again.stdout + again.stderr


def test_missing_path_exits_2(tmp_path):
    result = _lore(tmp_path, "ingest", str(tmp_path / "absent.md"), env=_env(tmp_path))
    assert result.returncode == 2
    assert "no such file or folder" in result.stdout + result.stderr


def test_waiting_without_a_worker_times_out_with_exit_1(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\nService alpha listens on port 8080.\n")
    result = _lore(tmp_path, "ingest", "--timeout", "3", str(tmp_path / "a.md"), env=_env(tmp_path))
    assert result.returncode == 1
    assert "timed out" in result.stdout + result.stderr


@pytest.mark.slow
def test_waits_for_each_source_to_finish_with_a_running_worker(tmp_path, shared_data):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("003-Use-Concourse-CI.md", "007-Use-ECR-As-Container-Registry.md"):
        (docs / name).write_bytes((shared_data / "ops" / "moj-adrs" / name).read_bytes())
    with FakeLLM() as fake:
        env = _env(tmp_path, LORE_LLM__BASE_URL=fake.base_url)
        worker = subprocess.Popen(
            [sys.executable, "-m", "lore.cli", "worker", "--pool", "solo"], cwd=tmp_path, env=env,
            stdout=(tmp_path / "worker.log").open("wb"), stderr=subprocess.STDOUT,
        )
        try:
            result = _lore(tmp_path, "ingest", "--timeout", "300", str(docs), env=env, timeout=360)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out + (tmp_path / "worker.log").read_text()[-3000:]
    rows = [line for line in out.splitlines() if ".md" in line]
    assert len(rows) == 2, out
    assert all("done" in line for line in rows), out
