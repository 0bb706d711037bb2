"""Infrastructure dying under load: Redis killed and restarted mid-run, the API killed during an upload.

- Redis gets SIGKILL while a worker and beat run and sources are in flight, more sources arrive while
  it is down (their messages cannot be sent), and it is restarted on the same port and folder, replaying
  its append-only file. Beat reconnects; the worker either reconnects or, when the connection drops
  while it restores unacknowledged messages (a kombu failure: ``'NoneType' object has no attribute
  'hostname'``, "Unrecoverable error"), exits with a failure status and is restarted, as a supervisor
  with restart-on-failure would. The jobs table and the sweep recover whatever message was lost; every
  source is applied exactly once.
- ``lore serve`` gets SIGKILL halfway through a streamed upload: nothing of the partial body reaches
  the ledger, the repository or the ingest folder. It is killed again (crash point ``after_ref``) after
  the raw bytes were committed but before the source row was: the retried upload reuses the committed
  bytes, so the source exists once with one raw commit. Each time the next API process starts and serves.
- A ``git`` killed while it holds ``index.lock`` leaves the file behind; once it is stale, the next
  publish removes it and the working tree people browse follows HEAD again.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

from bench.fake_llm import FakeLLM
from store.git_store import ABSENT, STALE_LOCK_MARGIN_S, GitStore
from tests.services import RedisServer, free_port, wait_port
from tests.workers.lore_cluster import LoreCluster, check_consistent, hellman_docs

pytestmark = [pytest.mark.services, pytest.mark.slow]

WORKER_ENV = {
    "LORE_WORKER__LEASE_S": "60",
    "LORE_WORKER__SOFT_TIME_LIMIT_S": "40",
    "LORE_WORKER__TIME_LIMIT_S": "50",
    "LORE_WORKER__VISIBILITY_TIMEOUT_S": "60",
    "LORE_WORKER__SWEEP_INTERVAL_S": "1",
    "LORE_WORKER__CATALOG_DEBOUNCE_S": "0",
    "LORE_LOG_LEVEL": "INFO",
}


def test_redis_killed_and_restarted_with_its_append_only_file(tmp_path, monkeypatch):
    redis = RedisServer()
    redis.start()
    fake = FakeLLM(latency_ms=200).start()
    cluster: LoreCluster | None = None
    docs = hellman_docs(6)
    names = list(docs)
    restarts: list[int] = []  # exit statuses of workers that stopped on their own
    try:
        cluster = LoreCluster(tmp_path, monkeypatch,
                              {**WORKER_ENV, "LORE_WORKER__BROKER_URL": redis.url, "LORE_LLM__BASE_URL": fake.base_url})
        c = cluster
        worker = c.start("worker", "worker", "--concurrency", "2", "--no-migrate")
        beat = c.start("beat", "beat")
        sources = c.ingest({n: docs[n] for n in names[:3]})
        c.wait(lambda: c.rows("SELECT count(*) FROM sources WHERE status = 'done'")[0][0] >= 1, 240,
               "a first source to be done", "worker")
        assert c.rows("SELECT count(*) FROM jobs WHERE state != 'done'")[0][0] > 0, "nothing left in flight"
        redis.stop(kill=True)
        # Sources arriving while the broker is down: rows and jobs are committed, the sends fail.
        sources += c.ingest({n: docs[n] for n in names[3:]})
        time.sleep(2)
        redis.start()  # same port, same folder: the append-only file is replayed

        def supervised_finished() -> bool:  # restart-on-failure, as docker compose or systemd would
            nonlocal worker
            if worker.poll() is not None:
                restarts.append(worker.returncode)
                assert worker.returncode != 0, "the worker stopped but reported success: no supervisor restarts it"
                worker = c.start(f"worker-{len(restarts)}", "worker", "--concurrency", "2", "--no-migrate")
            return c.finished(len(sources))

        c.wait(supervised_finished, 240, "every source to be done after the restart", "worker")
        assert len(restarts) <= 1, restarts
        assert beat.poll() is None, c.log("beat")
    finally:
        if cluster is not None:
            cluster.stop_all()
        fake.stop()
        redis.close()
    check_consistent(cluster, sources)
    # The worker really lost its broker (it was not idle through the outage), then connected again or
    # stopped on the error and was restarted.
    log = (cluster.logs / "worker.log").read_text(errors="replace")
    assert "Connection to broker lost" in log
    assert log.count("Connected to redis://") >= 2 or ("Unrecoverable error" in log and restarts)


class SlowUpload:
    """A multipart body sent in two halves; the second waits until ``release`` is set."""

    def __init__(self, name: str, data: bytes) -> None:
        self.boundary = "lore-crash-" + hashlib.sha256(data).hexdigest()[:16]
        head = (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                "Content-Type: text/markdown\r\n\r\n").encode()
        tail = f"\r\n--{self.boundary}--\r\n".encode()
        half = len(data) // 2
        self.first, self.second = head + data[:half], data[half:] + tail
        self.half_sent = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None
        self.response: httpx.Response | None = None

    def chunks(self):  # type: ignore[no-untyped-def]
        yield self.first
        self.half_sent.set()
        self.release.wait(60)
        yield self.second

    def send(self, url: str, token: str) -> None:
        headers = {"content-type": f"multipart/form-data; boundary={self.boundary}",
                   "authorization": f"Bearer {token}"}
        try:
            self.response = httpx.post(url, content=self.chunks(), headers=headers, timeout=60)
        except httpx.HTTPError as exc:
            self.error = exc


def test_api_killed_during_an_upload_leaves_nothing_half_ingested(tmp_path, monkeypatch):
    token = "crash-test-secret-0123456789"
    port = free_port()
    cluster = LoreCluster(tmp_path, monkeypatch, {
        "LORE_API__API_KEYS": json.dumps([f"crash:ingest+read:{token}"]),
        "LORE_API__PORT": str(port),
        "LORE_LLM__BASE_URL": "http://127.0.0.1:9/v1",  # never called: no worker runs here
        "LORE_LOG_LEVEL": "INFO",
    })
    c = cluster
    name, data = next(iter(hellman_docs(1).items()))
    data = data * 40  # a few kilobytes, so half of it is a real partial body
    sha = hashlib.sha256(data).hexdigest()
    base = f"http://127.0.0.1:{port}"
    auth = {"authorization": f"Bearer {token}"}

    def serve(log: str, faults: str = ""):  # type: ignore[no-untyped-def]
        proc = c.start(log, "serve", env={"LORE_FAULTS": faults} if faults else None)
        wait_port(port, timeout=120)
        assert httpx.get(f"{base}/health/live", timeout=10).status_code == 200
        return proc

    def ingests() -> list[str]:
        log = c.git("log", "--format=%s|%(trailers:key=Lore-Source,valueonly)")
        return [line.strip() for line in log.splitlines() if line.startswith("Ingest ")]

    try:
        # 1. SIGKILL halfway through the body.
        api = serve("api-1")
        upload = SlowUpload(name, data)
        sender = threading.Thread(target=upload.send, args=(f"{base}/sources", token))
        sender.start()
        assert upload.half_sent.wait(30)
        time.sleep(0.5)  # the server has read the first half and waits for the rest
        c.kill_group(api)
        upload.release.set()
        sender.join(60)
        assert api.returncode == -signal.SIGKILL
        assert isinstance(upload.error, httpx.HTTPError)
        assert c.rows("SELECT count(*) FROM sources")[0][0] == 0
        assert c.rows("SELECT count(*) FROM jobs")[0][0] == 0
        assert ingests() == []
        assert list((tmp_path / "ingest").iterdir()) == []
        assert [p for p in c.data.rglob("*") if name in p.name] == []

        # 2. The next process serves; SIGKILL after the raw bytes were committed, before the row was.
        api = serve("api-2", faults="after_ref")
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{base}/sources", files={"file": (name, data, "text/markdown")}, headers=auth, timeout=30)
        api.wait(30)
        assert api.returncode == -signal.SIGKILL, c.log("api-2")
        c.kill_group(api)
        assert json.loads((c.data / "faults" / "after_ref.fired").read_text())["pid"] == api.pid
        assert ingests() == [f"Ingest {name}|{sha}"]  # the raw commit, orphaned: no row points at it
        assert c.rows("SELECT count(*) FROM sources")[0][0] == 0

        # 3. The next process serves and the retried upload (streamed in halves again, this time not
        # interrupted) succeeds, reusing the committed bytes.
        api = serve("api-3")
        upload = SlowUpload(name, data)
        sender = threading.Thread(target=upload.send, args=(f"{base}/sources", token))
        sender.start()
        assert upload.half_sent.wait(30)
        time.sleep(0.5)
        upload.release.set()
        sender.join(60)
        assert upload.response is not None, upload.error
        assert upload.response.status_code == 202, upload.response.text
        body = upload.response.json()
        assert body["source_id"] == sha
        assert body["job_ids"]
        assert httpx.get(f"{base}/sources/{sha}", headers=auth, timeout=30).status_code == 200
    finally:
        c.stop_all()
    assert c.rows("SELECT id, status, raw_path FROM sources") == [(sha, "pending", f"raw/{name.rsplit('.', 1)[0]}.md")]
    assert c.rows("SELECT kind, state FROM jobs") == [("extract", "queued")]
    assert ingests() == [f"Ingest {name}|{sha}"]
    assert c.git("show", f"HEAD:raw/{name.rsplit('.', 1)[0]}.md").encode() == data
    c.git("fsck", "--strict")
    assert sorted(p.name for p in (c.repo / ".git").rglob("*.lock")) == []


def test_a_git_killed_while_holding_the_index_lock_does_not_freeze_the_working_tree(tmp_path):
    """A ``git commit`` waiting in its editor holds ``index.lock``; SIGKILL leaves the file behind. Once
    the lock is stale, the next publish removes it and the working tree follows HEAD again."""
    repo = tmp_path / "wiki"
    store = GitStore(repo)
    store.init()
    editor = subprocess.Popen(
        ["git", "-C", str(repo), "commit", "-a", "--allow-empty", "-q"],  # -a: the lock is held in the editor
        env={**os.environ, "GIT_EDITOR": "sleep 120 #"}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    lock = repo / ".git" / "index.lock"
    deadline = time.monotonic() + 30
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.exists(), "git commit never took the index lock"
    os.killpg(editor.pid, signal.SIGKILL)
    editor.wait(30)
    assert lock.exists()  # SIGKILL: git had no chance to remove it
    crashed = time.time() - 2 * (store.lock_timeout_ms / 1000 + STALE_LOCK_MARGIN_S)
    os.utime(lock, (crashed, crashed))  # the crash happened a while ago: the lock is stale by now

    store.write({"wiki/after.md": b"written after the crash\n"}, {"wiki/after.md": ABSENT}, "After the crash")
    assert not lock.exists()
    assert (repo / "wiki" / "after.md").read_bytes() == b"written after the crash\n"
    assert subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True,
                          text=True, check=True).stdout == ""
