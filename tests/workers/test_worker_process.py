"""Real processes: ``lore beat`` sends the sweep, a ``lore worker`` runs it and then the jobs it re-sent.

Nothing is dispatched by the test: the jobs exist only in the table (as after a lost message or a
restart), and the production loop beat -> ``jobs.sweep`` -> ``jobs.run`` -> ``synth.service.run_job``
must find and run every one of them on the embedded broker. The jobs have a kind no flow knows, so
each run fails fast with a recorded reason: what matters here is that a worker process claimed it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from store.db import make_engine, make_session_factory, unit_of_work
from store.jobs import enqueue_job
from store.migrate import upgrade
from store.models import Job, utcnow
from tests.services import free_port


def _env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
    env.update(
        LORE_PATHS__DATA_DIR=str(tmp_path / "data"),
        LORE_PATHS__INGEST_DIR=str(tmp_path / "ingest"),
        LORE_LLM__BASE_URL=f"http://127.0.0.1:{free_port()}/v1",  # never called: the jobs fail first
        LORE_WORKER__SWEEP_INTERVAL_S="1",
        LORE_LOG_LEVEL="INFO",
    )
    return env


@pytest.mark.slow
def test_beat_and_worker_run_jobs_that_only_exist_in_the_table(tmp_path):
    env = _env(tmp_path)
    url = f"sqlite:///{tmp_path / 'data' / 'lore.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as s:
        ids = [enqueue_job(s, "probe", f"probe:{i}", {}, max_attempts=1).id for i in range(6)]
        s.execute(update(Job).values(updated_at=utcnow() - timedelta(minutes=5)))
    logs = tmp_path / "logs"
    logs.mkdir()
    cmd = [sys.executable, "-m", "lore.cli"]
    procs = [
        subprocess.Popen(
            [*cmd, *args], cwd=tmp_path, env=env, stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT
        )
        for name, args in (("worker", ["worker", "--concurrency", "2"]), ("beat", ["beat"]))
    ]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with factory() as s:
                jobs = s.scalars(select(Job).where(Job.id.in_(ids))).all()
            if all(j.attempts >= 1 and j.state in ("failed", "dead") for j in jobs):
                break
            assert all(p.poll() is None for p in procs), (logs / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("jobs not run:\n" + (logs / "worker.log").read_text()[-3000:])
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
        engine.dispose()
    worker_pids = {j.worker.rsplit(":", 1)[1] for j in jobs}
    assert str(procs[0].pid) not in worker_pids  # claimed in the pool's child processes, not the parent
    assert all(j.attempts == 1 for j in jobs)  # each claimed once, however many sweeps ran meanwhile
    assert all("probe" in (j.last_error or "") for j in jobs)


@pytest.mark.slow
def test_a_worker_without_beat_runs_a_delayed_job_when_due_and_its_retry(tmp_path, monkeypatch):
    """The debounced catalog, a retry after backoff: dispatched before they are due, run when due."""
    env = _env(tmp_path)
    env["LORE_WORKER__SWEEP_INTERVAL_S"] = "3600"  # and no beat: nothing sweeps
    for key, value in env.items():
        if key.startswith("LORE_"):
            monkeypatch.setenv(key, value)
    from lore.config import load_settings
    from lore.wiring import Wiring, migrate

    settings = load_settings()
    migrate(settings)
    wiring = Wiring(settings)
    wiring.prepare_broker()
    with unit_of_work(wiring.session_factory) as s:
        job_id = enqueue_job(s, "probe", "probe:delayed", {}, max_attempts=2, delay_s=4.0).id
        due = s.get(Job, job_id).next_attempt_at
    logs = tmp_path / "logs"
    logs.mkdir()
    worker = subprocess.Popen(
        [sys.executable, "-m", "lore.cli", "worker", "--concurrency", "1", "--pool", "solo"],
        cwd=tmp_path, env=env, stdout=(logs / "worker.log").open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        wiring.dispatch([job_id])  # sent now, the job is due in 4 s
        early: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with wiring.session_factory() as s:
                job = s.get(Job, job_id)
                state, attempts = job.state, job.attempts
            if utcnow() < due.replace(tzinfo=utcnow().tzinfo) - timedelta(seconds=0.5):
                early.append(attempts)
            if state == "dead":
                break
            assert worker.poll() is None, (logs / "worker.log").read_text()[-3000:]
            time.sleep(0.3)
        else:
            pytest.fail(f"job {state} after {attempts} attempt(s):\n" + (logs / "worker.log").read_text()[-3000:])
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        wiring.close()
    assert early
    assert set(early) == {0}  # not claimed before it was due
    assert attempts == 2  # the first run failed; its retry was sent again with its backoff and ran
    assert "probe" in (job.last_error or "")
