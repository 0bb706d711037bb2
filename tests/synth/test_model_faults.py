"""Model faults at the system level: real jobs table, real git, real HTTP to the fake model server.

``tests/synth/test_client.py`` proves the client's rules one call at a time. Here whole sources go
through the write path (``synth.runner.drain``, the same ``run_job`` the Celery tasks call) while the
fake model server misbehaves, and the ledger is the witness: every HTTP attempt is a ``model_calls``
row written by the production recorder (``lore.wiring.make_recorder``).

- While the model is down, jobs wait in the jobs table (``queued``, no attempt spent), the breaker
  refuses calls locally, ``/health/ready`` says ``degraded`` and reads answer 200; after recovery every
  source is ``done``.
- Each fault kind of issue 7 (down, slow first byte, hang, 500 burst, malformed JSON, schema ignored,
  context overflow, truncated output, cut body) ends ``done`` or ``failed`` with a reason a person can
  read, never lost, and no logical call makes more than ``1 + max_retries`` transient attempts (plus
  the one repair call).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.deps import ApiDeps
from bench.fake_llm import FakeLLM
from ingest.service import intake_file
from lore.config import load_settings
from lore.wiring import Wiring, make_recorder
from store.db import make_engine, make_session_factory
from store.git_store import GitStore
from store.migrate import upgrade
from store.models import Job, ModelCall, Source
from synth.client import Endpoint, ModelClient, Timeouts
from synth.deps import SynthDeps
from synth.runner import drain

MAX_RETRIES = 2
POSTMORTEMS = "ops/dfds-postmortems/docs"
SMALL = (
    "PM2020-007 - Unhealthy nodes.md",
    "PM2020-001 - Inotify file watches exhaustion.md",
    "PM2022-007 - Kafka metrics stopped being exported to Prometheus.md",
    "PM2022-002 -  Logs not shipped to CloudWatch.md",
)


@dataclass
class Lab:
    """A wiki whose model client records every attempt in the ledger, as in production."""

    deps: SynthDeps
    fake: FakeLLM

    def ingest(self, path: Path) -> str:
        with self.deps.session_factory() as session, session.begin():
            r = intake_file(session, self.deps.store, path, root=None, max_bytes=10_000_000,
                            parser_timeout_s=60, parser_memory_mb=1024)
            assert r.status == "new", (path, r)
            return str(r.source_id)

    def source(self, source_id: str) -> Source:
        with self.deps.session_factory() as session:
            src = session.get(Source, source_id)
            assert src is not None, f"source {source_id} is lost"
            session.expunge(src)
            return src

    def calls(self) -> list[ModelCall]:
        with self.deps.session_factory() as session:
            rows = list(session.scalars(select(ModelCall).order_by(ModelCall.id)))
            session.expunge_all()
            return rows

    def jobs(self) -> list[Job]:
        with self.deps.session_factory() as session:
            rows = list(session.scalars(select(Job).order_by(Job.id)))
            session.expunge_all()
            return rows


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty ledger at the newest schema, migrated once; each lab starts from a copy."""
    db = tmp_path_factory.mktemp("template") / "lore.db"
    upgrade(f"sqlite:///{db}")
    return db


def make_lab(root: Path, fake: FakeLLM, template: Path, **client_kw) -> Lab:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, root / "lore.db")
    url = f"sqlite:///{root / 'lore.db'}"
    factory = make_session_factory(make_engine(url))
    store = GitStore(root / "wiki")
    store.init()
    options = {"max_retries": MAX_RETRIES, "backoff_base_s": 0.05, "backoff_max_s": 0.2,
               "timeouts": Timeouts(connect_s=2.0, read_s=1.0, total_s=30.0), **client_kw}
    client = ModelClient([Endpoint(fake.base_url, "fake-llm")], recorder=make_recorder(factory), **options)
    return Lab(SynthDeps(factory, store, client, catalog_debounce_s=0.0, max_attempts=3), fake)


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed jobs come back after 0.2 s instead of 5 s or more (the time, not the rule, is shortened)."""
    monkeypatch.setattr("synth.service.BACKOFF_S", (0.2, 0.2, 0.2, 0.2))


def logical_calls(rows: list[ModelCall]) -> list[list[ModelCall]]:
    """Group attempt rows into logical calls: a call starts at attempt 1 (0: refused before sending).

    ``drain`` runs one job at a time, so the rows of one call are consecutive.
    """
    calls: list[list[ModelCall]] = []
    for row in rows:
        starts = row.attempt <= 1 or not calls or calls[-1][-1].job_id != row.job_id \
            or calls[-1][-1].stage != row.stage or calls[-1][-1].attempt >= row.attempt
        if starts:
            calls.append([row])
        else:
            calls[-1].append(row)
    return calls


def assert_bounded(rows: list[ModelCall]) -> None:
    """Per logical call: at most 1 + retries transient attempts, one repair, one shorter re-ask, nothing
    after an overflow."""
    for call in logical_calls(rows):
        sent = [r for r in call if r.outcome != "breaker_open" and r.attempt > 0]
        transient = [r for r in call if r.outcome == "transient"]
        repairs = [r for r in call if r.outcome == "invalid"]
        what = [(r.stage, r.attempt, r.outcome) for r in call]
        assert len(transient) <= 1 + MAX_RETRIES, what
        cut = [r for r in call if r.outcome == "truncated"]
        assert len(repairs) <= 2, what
        assert len(cut) <= 2, what
        assert len(sent) <= 1 + MAX_RETRIES + 1 + 1, what
        overflow = [i for i, r in enumerate(call) if r.outcome == "overflow"]
        assert not overflow or overflow == [len(call) - 1], f"an overflow was retried: {what}"


# --- the model is down while jobs are queued ---------------------------------------------------------


@pytest.fixture
def down_lab(tmp_path: Path, migrated: Path) -> Iterator[tuple[Lab, Wiring]]:
    with FakeLLM(seed=1) as fake:
        lab = make_lab(tmp_path, fake, migrated, breaker_failures=3, breaker_reset_s=1.0)
        settings = load_settings(paths={"data_dir": tmp_path / "data"}, llm={"base_url": fake.base_url})
        wiring = Wiring(settings)  # only its model probe is used: the one /health/ready calls in production
        yield lab, wiring
        wiring.close()


def test_jobs_wait_in_the_table_while_the_model_is_down_then_all_finish(down_lab, shared_data):
    lab, wiring = down_lab
    docs = [shared_data / POSTMORTEMS / name for name in SMALL]
    first = lab.ingest(docs[0])
    drain(lab.deps)
    assert lab.source(first).status == "done"
    with lab.deps.session_factory() as session:
        page = session.scalar(select(Source.slug).where(Source.id == first))
    page_path = f"wiki/sources/{page}.md"
    api = TestClient(create_app(ApiDeps(lab.deps.session_factory, lab.deps.store, model_health=wiring.model_health)))

    lab.fake.configure(down=True)
    down_at = time.monotonic()
    waiting = [lab.ingest(d) for d in docs[1:]]
    worker = threading.Thread(target=drain, args=(lab.deps,), name="drain", daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while not any(c.outcome == "breaker_open" for c in lab.calls()):
        assert time.monotonic() < deadline, "the breaker never opened"
        time.sleep(0.1)
    time.sleep(1.5)  # let a half-open trial happen while the server is still down

    jobs = [j for j in lab.jobs() if j.source_id in waiting and j.kind == "extract"]
    assert len(jobs) == len(waiting)
    assert {j.state for j in jobs} <= {"queued", "running"}, [(j.id, j.state, j.last_error) for j in jobs]
    assert all(j.attempts <= 1 for j in jobs), [(j.id, j.attempts) for j in jobs]  # waiting spends nothing
    assert all("circuit breaker" in (j.last_error or "") or "failed" in (j.last_error or "")
               for j in jobs if j.state == "queued")
    assert not [j for j in lab.jobs() if j.state in ("failed", "dead")]
    assert {lab.source(s).status for s in waiting} == {"pending"}
    with api:
        ready = api.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["model"] == "degraded"
        assert api.get(f"/pages/{page_path}").status_code == 200
        assert api.get("/pages").status_code == 200
        assert api.get("/query", params={"q": "unhealthy nodes"}).status_code == 200
        detail = api.get(f"/sources/{waiting[0]}").json()
        assert detail["source"]["status"] == "pending"
        assert [j["state"] for j in detail["jobs"]] in (["queued"], ["running"])

        # The breaker kept the outage cheap: after it opened, only half-open trials reached the server.
        down_s = time.monotonic() - down_at
        reached = lab.fake.stats()["by_outcome"].get("down", 0)
        assert reached <= 3 + int(down_s / 1.0) + 1, (reached, down_s)
        refused = [c for c in lab.calls() if c.outcome == "breaker_open"]
        assert refused
        assert all(c.latency_ms == 0 for c in refused)

        lab.fake.configure(down=False)
        worker.join(timeout=60)
        assert not worker.is_alive(), "the queue did not drain after the model came back"
        assert {lab.source(s).status for s in waiting} == {"done"}
        assert {j.state for j in lab.jobs()} == {"done"}
        assert lab.deps.client.breakers[0].state == "closed"
        assert api.get(f"/pages/{page_path}").status_code == 200
        deadline = time.monotonic() + 15  # the API caches its model probe for 10 s
        while api.get("/health/ready").json()["status"] != "ok":
            assert time.monotonic() < deadline, "readiness never returned to ok"
            time.sleep(0.5)
    assert_bounded(lab.calls())


# --- every fault kind, one source each ---------------------------------------------------------------


def _fault_cases() -> list[tuple[str, dict, str]]:
    """(name, what to do to the fake, expected source status)."""
    return [
        ("down for a while", {"outage": (1.2, "down")}, "done"),
        ("500 burst", {"outage": (0.6, "error")}, "done"),
        ("500s in a row", {"script": ["error", "error"]}, "done"),
        ("slow first byte", {"config": {"slow_rate": 1.0, "slow_s": 0.3}}, "done"),
        ("slower than the read timeout", {"script": ["slow"], "config": {"slow_s": 2.0}}, "done"),
        ("hang", {"script": ["hang"]}, "done"),
        ("cut body", {"script": ["cut"]}, "done"),
        ("malformed JSON once", {"script": ["malformed"]}, "done"),
        ("malformed JSON always", {"config": {"malformed_rate": 1.0}}, "failed"),
        ("schema ignored once", {"script": ["ignore_schema"]}, "done"),
        ("schema ignored always", {"config": {"ignore_schema_rate": 1.0}}, "failed"),
        ("truncated output once", {"script": ["truncate"]}, "done"),
        ("truncated output always", {"config": {"truncate_rate": 1.0}}, "failed"),
        ("context overflow (400)", {"config": {"context_tokens": 1500}}, "failed"),
    ]


READABLE = {
    "malformed JSON always": "did not match the expected structure",
    "schema ignored always": "did not match the expected structure",
    "truncated output always": "cut off",
    "context overflow (400)": "too long for the model's context",
}


def test_each_fault_kind_ends_done_or_failed_with_a_reason_and_calls_stay_bounded(
    tmp_path, shared_data, migrated, quick_backoff
):
    doc = shared_data / POSTMORTEMS / SMALL[2]
    seen: dict[str, tuple[str, dict[str, int]]] = {}
    for i, (name, fault, expected) in enumerate(_fault_cases()):
        with FakeLLM(seed=i) as fake:
            # A short breaker reset: a call whose retries ran out waits max(reset, 5 s) in the table.
            lab = make_lab(tmp_path / f"case{i}", fake, migrated, breaker_reset_s=1.0)
            source_id = lab.ingest(doc)
            fake.configure(**fault.get("config", {}))
            fake.script(*fault.get("script", []))
            if "outage" in fault:
                fake.outage(*fault["outage"])
            started = time.monotonic()
            drain(lab.deps)
            assert time.monotonic() - started < 60, name
            src = lab.source(source_id)
            rows = lab.calls()
            assert src.status == expected, (name, src.status, src.error, [(r.stage, r.outcome) for r in rows])
            jobs = lab.jobs()
            assert jobs, name
            assert all(j.state in ("done", "dead") for j in jobs), (name, [(j.kind, j.state) for j in jobs])
            if expected == "failed":
                assert READABLE[name] in (src.error or ""), (name, src.error)
                assert "Traceback" not in (src.error or "")
                assert [j.state for j in jobs if j.kind == "extract"] == ["dead"]
            else:
                assert src.error is None
                assert not [j for j in jobs if j.state == "dead"], name
            assert_bounded(rows)
            outcomes: dict[str, int] = {}
            for r in rows:
                outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
            seen[name] = (src.status, outcomes)
    # The faults really happened (each case left its mark in the ledger).
    assert seen["down for a while"][1].get("transient", 0) >= 1
    assert seen["500 burst"][1].get("transient", 0) >= 1
    assert seen["500s in a row"][1]["transient"] == 2
    assert seen["slower than the read timeout"][1]["transient"] == 1
    assert seen["hang"][1]["transient"] == 1
    assert seen["cut body"][1]["transient"] == 1
    assert seen["malformed JSON once"][1]["repaired"] == 1
    assert seen["schema ignored once"][1]["repaired"] == 1
    assert seen["truncated output once"][1]["truncated"] == 1
    attempts = 5  # the extract job's max_attempts (intake's default)
    # The chunk, then its halves (and their halves), the smallest asked once more shorter; never retried on
    # a later attempt: the same request would be cut the same way.
    from synth.flows.extract import MAX_SPLITS

    assert 2 <= seen["truncated output always"][1]["truncated"] <= 2 * 2**MAX_SPLITS
    assert set(seen["truncated output always"][1]) == {"truncated"}
    assert seen["context overflow (400)"][1] == {"overflow": 1}  # permanent at once: never retried
    assert seen["malformed JSON always"][1]["invalid"] == 2 * attempts  # the call and its repair, per attempt
    assert seen["schema ignored always"][1]["invalid"] == 2 * attempts
