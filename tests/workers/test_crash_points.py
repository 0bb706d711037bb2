"""SIGKILL at each named crash point of the write path, then a fresh worker converges (real Redis).

One data folder, one real Redis (append-only file), one beat, and real ``lore worker`` processes. For
each crash point in turn: one new source is taken in; a worker armed with the point (``LORE_FAULTS``)
runs until the point kills it with SIGKILL in the middle of its job (no handler runs; the job stays
``running`` with its lease and its queue message unacknowledged); what the point left behind is
recorded; then a fresh, unarmed worker finishes the work (the sweep re-sends the killed job once its
lease expires) and stops, and the end state is checked before the next point.

The points: the model answered an extraction / a summary and nothing was written; a render's git
objects were written but the branch did not move; the branch moved but the ledger was not updated
(render, source page); the catalog was rendered but not published. After every phase
``lore_cluster.check_consistent`` holds (every source applied exactly once, commit trailers and ledger
agree, no claim twice, ledger reconciled with HEAD, fsck clean, no lock left, the next write succeeds),
and over the whole run no model answer was asked for twice except the two lost before anything was
written.
"""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest

from bench.fake_llm import FakeLLM
from store.faults import parse_faults
from store.git_store import GitStore
from tests.services import RedisServer
from tests.workers.lore_cluster import LoreCluster, check_consistent, hellman_docs

pytestmark = [pytest.mark.services, pytest.mark.slow]

# (crash point, job kinds this process runs first, queue the armed worker consumes): the set-up runs the
# jobs ahead of the target in this process, so the armed worker's first job is the one it dies in.
PHASES = (
    ("after_model@extract", (), "synth"),
    ("after_model@render", ("extract",), "render"),
    ("before_ref@render", ("extract",), "render"),
    ("after_ref@render", ("extract",), "render"),
    ("after_ref@source_page", ("extract", "render"), "render"),
    ("catalog_write", ("extract", "render", "source_page"), "render"),
)
POINTS = tuple(point for point, _, _ in PHASES)
PAGE = "wiki/systems/hellman-cluster.md"
RENDER = "Render Hellman Cluster (revision "

# A killed job is due again after its lease; one worker runs at a time, so the shortest lease is safe.
ENV = {
    "LORE_WORKER__LEASE_S": "10",
    "LORE_WORKER__SOFT_TIME_LIMIT_S": "40",
    "LORE_WORKER__TIME_LIMIT_S": "50",
    "LORE_WORKER__VISIBILITY_TIMEOUT_S": "60",
    "LORE_WORKER__SWEEP_INTERVAL_S": "1",
    "LORE_WORKER__CATALOG_DEBOUNCE_S": "0",
    "LORE_LOG_LEVEL": "INFO",
}
WORKER = ("worker", "--pool", "solo", "--concurrency", "1", "--no-migrate")


def _kind(point: str) -> str:
    return parse_faults(point)[0].scope or "catalog"


def _left_behind(c: LoreCluster) -> dict[str, object]:
    """What the crash left, read before any other process touches the data folder."""
    recorded = c.rows("SELECT blob_id FROM pages WHERE path = ?", PAGE)
    return {
        "head": c.git("rev-parse", "HEAD").strip(),
        "head_subject": c.git("log", "-1", "--format=%s").strip(),
        "page_at_head": GitStore(c.repo, refresh_worktree=False).read(PAGE).version,
        "page_recorded": recorded[0][0] if recorded else None,
        "last_compose": c.rows("SELECT prompt_hash FROM model_calls WHERE stage = 'compose' ORDER BY id DESC LIMIT 1"),
        "dangling": [line.split()[-1] for line in c.git("fsck", "--no-reflogs", "--dangling").splitlines()
                     if line.startswith("dangling commit")],
        "source_pages": dict(c.rows("SELECT source_id, blob_id FROM pages WHERE kind = 'source'")),
    }


def test_sigkill_at_each_crash_point_then_a_fresh_worker_finishes(tmp_path, monkeypatch):
    redis = RedisServer()
    redis.start()
    fake = FakeLLM().start()
    cluster: LoreCluster | None = None
    sources: list[str] = []
    killed: dict[str, tuple[int, dict[str, object]]] = {}  # point -> (job id, payload)
    left: dict[str, dict[str, object]] = {}
    try:
        cluster = LoreCluster(
            tmp_path, monkeypatch,
            {**ENV, "LORE_WORKER__BROKER_URL": redis.url, "LORE_LLM__BASE_URL": fake.base_url},
        )
        c = cluster
        c.start("beat", "beat")
        for i, (name, body) in enumerate(hellman_docs(len(PHASES)).items()):
            point, before, queue = PHASES[i]
            sources += c.ingest({name: body})
            c.run_inline(before)
            log = f"{i}-armed-{point}"
            armed = c.start(log, *WORKER, "--queues", queue, env={"LORE_FAULTS": point})
            c.wait(lambda w=armed: w.poll() is not None, 240, f"the crash point {point}", log)
            assert armed.returncode == -signal.SIGKILL, c.log(log)
            marker = json.loads((c.data / "faults" / parse_faults(point)[0].marker_name).read_text())
            assert marker["pid"] == armed.pid
            running = c.rows("SELECT id, kind, payload FROM jobs WHERE state = 'running' AND worker LIKE ?",
                             f"%:{armed.pid}")
            assert [kind for _, kind, _ in running] == [_kind(point)], (point, running)
            killed[point] = (running[0][0], json.loads(running[0][2]))
            c.kill_group(armed)  # nothing the worker started outlives it
            left[point] = _left_behind(c)

            fresh = c.start(f"{i}-fresh", *WORKER)
            c.wait(lambda n=len(sources): c.finished(n), 240, f"a fresh worker to finish after {point}", f"{i}-fresh")
            c.stop(fresh)
            check_consistent(c, sources)
            assert c.rows("SELECT state FROM jobs WHERE id = ?", killed[point][0]) == [("done",)]
    finally:
        if cluster is not None:
            cluster.stop_all()
        fake.stop()
        redis.close()
    c = cluster

    # after_model@extract: the answer was recorded, then the process died before grounding; the retry
    # asked again (the only extraction asked twice) and wrote the claims once.
    extract_source = killed["after_model@extract"][1]["source_id"]
    extracts = Counter(sid for (sid,) in c.rows("SELECT source_id FROM model_calls WHERE stage = 'extract' "
                                               "AND outcome IN ('ok', 'repaired')"))
    assert extracts == Counter({sid: 2 if sid == extract_source else 1 for sid in sources})

    # after_model@render: the summary was composed and lost with the process, so the retry asked for it
    # again. That is the only summary asked for twice: a render killed later (before or after the ref
    # moved) found its summary cached under the claim set and rendered the same page without the model.
    (dropped,), = left["after_model@render"]["last_compose"]
    composes = Counter(h for (h,) in c.rows("SELECT prompt_hash FROM model_calls WHERE stage = 'compose' "
                                           "AND outcome IN ('ok', 'repaired')"))
    assert {h: n for h, n in composes.items() if n > 1} == {dropped: 2}
    judged = Counter(h for (h,) in c.rows("SELECT prompt_hash FROM model_calls WHERE stage = 'judge'"))
    assert [h for h, n in judged.items() if n > 1] == []

    # before_ref@render: the commit was made and never published (a dangling commit, which fsck
    # tolerates); the retry published that revision once, as a new commit.
    state = left["before_ref@render"]
    (lost,) = state["dangling"]
    assert c.git("rev-parse", f"{lost}^").strip() == state["head"]  # built on HEAD, which never moved to it
    subject = c.git("log", "-1", "--format=%s", lost).strip()
    assert subject.startswith(RENDER)
    on_branch = [(commit, s) for commit, s, _ in c.commits() if s == subject]
    assert len(on_branch) == 1
    assert on_branch[0][0] != lost

    # after_ref@render: the branch held the new page while the ledger still recorded the old one; the
    # retry made no second commit for that revision and recorded the page at HEAD.
    state = left["after_ref@render"]
    assert str(state["head_subject"]).startswith(RENDER)
    assert state["page_at_head"] != state["page_recorded"]
    assert [s for _, s, _ in c.commits()].count(state["head_subject"]) == 1

    # after_ref@source_page: the page was at HEAD and the ledger had no blob for it yet.
    state = left["after_ref@source_page"]
    assert str(state["head_subject"]).startswith("Source page ")
    assert state["source_pages"].get(killed["after_ref@source_page"][1]["source_id"]) is None

    # catalog_write: the catalog job died before publishing; the catalog at HEAD lists every source.
    log_md = c.git("show", "HEAD:wiki/log.md")
    for (slug,) in c.rows("SELECT slug FROM sources"):
        assert f"sources/{slug}" in log_md, slug
