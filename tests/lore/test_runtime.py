"""`lore up` for real: the newcomer's `make run` path, Ctrl-C, and resuming after a hard kill.

The model is the fake OpenAI-compatible server (a test double, in this test process); everything else
is real: `make`, `lore up` and its children, Celery on the local SQLite broker, git, the API.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from bench.fake_llm import FakeLLM
from lore.runtime import RuntimeFailure, Up, data_dir_lock
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
FIVE = (
    "ops/moj-adrs/003-Use-Concourse-CI.md",
    "ops/moj-adrs/007-Use-ECR-As-Container-Registry.md",
    "ops/dfds-postmortems/docs/PM2020-001 - Inotify file watches exhaustion.md",
    "ops/prometheus-runbooks/runbooks/kubernetes/KubePodCrashLooping.md",
    "ops/moj-runbooks/access-eks-cluster.html.md.erb",
)


# Set by an outer `make test`; an inner make would then print "Entering directory" lines.
MAKE_VARS = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")


def _env(api_port: int, fake: FakeLLM, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_") and k not in MAKE_VARS}
    env.update(LORE_LLM__BASE_URL=fake.base_url, LORE_API__PORT=str(api_port), **extra)
    return env


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie waiting for its new parent is gone for our purposes


def _children(pid: int) -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _sources(api: str) -> list[dict]:
    with contextlib.suppress(httpx.HTTPError):
        resp = httpx.get(f"{api}/sources", params={"limit": 100}, timeout=10)
        if resp.status_code == 200:
            return list(resp.json()["sources"])
    return []


def _copy_into(ingest: Path, shared_data: Path, names=FIVE) -> None:
    ingest.mkdir(exist_ok=True)
    for name in names:
        src = shared_data / name
        tmp = ingest / (src.name + ".tmp")  # how a careful producer writes: never read half-written
        shutil.copyfile(src, tmp)
        tmp.rename(ingest / src.name)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.mark.slow
def test_newcomer_make_run_copy_five_files_read_the_pages(tmp_path, shared_data):
    clone = tmp_path / "lore"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{ROOT}", str(clone)], check=True)
    # The clone uses this checkout's installed environment instead of building its own (minutes,
    # network): its .venv links to the installed programs and model, with its own install stamp newer
    # than its pyproject. A dry run proves `make run` would do nothing but `lore up`, so nothing is
    # ever installed from the clone into the shared environment.
    venv = clone / ".venv"
    venv.mkdir()
    for part in ("bin", "lib", "share", "pyvenv.cfg"):
        (venv / part).symlink_to(ROOT / ".venv" / part)
    os.utime(clone / "pyproject.toml", (0, 0))
    (venv / ".lore-installed").touch()
    clean_env = {k: v for k, v in os.environ.items() if k not in MAKE_VARS}
    dry = subprocess.run(["make", "-n", "run"], cwd=clone, capture_output=True, text=True, check=True,
                         env=clean_env).stdout
    assert dry.strip().splitlines() == [".venv/bin/lore up"], f"make run would do more than start Lore:\n{dry}"

    port = free_port()
    api = f"http://127.0.0.1:{port}"
    log = tmp_path / "make-run.log"
    kids: list[int] = []
    with FakeLLM() as fake, log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "run"], cwd=clone, env=_env(port, fake), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait(lambda: "ready" in log.read_text(errors="replace"), 240, "`lore up` to be ready", log)
            _copy_into(clone / "ingest", shared_data)

            def all_done() -> bool:
                sources = _sources(api)
                assert not [s for s in sources if s["status"] == "failed"], sources
                return len(sources) == 5 and all(s["status"] == "done" for s in sources)

            repo = clone / "data" / "wiki"
            missing: list[str] = []

            def pages_published() -> bool:
                # Every page a source touched is committed in ./data/wiki and served by the API.
                committed = set(_git(repo, "ls-tree", "-r", "--name-only", "main").splitlines())
                missing.clear()
                for source in _sources(api):
                    pages = httpx.get(f"{api}/sources/{source['id']}", timeout=10).json()["pages_touched"]
                    assert pages, f"{source['origin']} touched no page"
                    for path in pages:
                        if path not in committed or httpx.get(f"{api}/pages/{path}", timeout=10).status_code != 200:
                            missing.append(path)
                return not missing

            worker_log = clone / "data" / "logs" / "worker-1.log"
            _wait(all_done, 300, "five sources to be done", worker_log)
            _wait(pages_published, 120, "their pages to be committed and served", worker_log)
            sources = _sources(api)
            # Only the five documents were taken in, not the `ingest` package's own code in ./ingest.
            assert sorted(s["origin"] for s in sources) == sorted(Path(n).name for n in FIVE)
            _git(repo, "fsck", "--strict")
            lore_up = int((clone / "data" / "lore-up.lock").read_text())
            kids = _children(lore_up)
            assert len(kids) == 3  # two solo workers (LORE_WORKER__CONCURRENCY=2) and the api; the model is the fake
            # A worker killed outright (the OOM killer's way) is replaced and the work goes on.
            workers = [pid for pid in kids if b"\0worker\0" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            assert len(workers) == 2, kids
            os.kill(workers[0], signal.SIGKILL)
            _wait(lambda: len(_children(lore_up)) == 3 and workers[0] not in _children(lore_up), 60,
                  "a replacement worker", log)
            _copy_into(clone / "ingest", shared_data, ("ops/moj-adrs/004-use-kubernetes-for-container-management.md",))
            _wait(lambda: len(_sources(api)) == 6 and all(s["status"] == "done" for s in _sources(api)), 300,
                  "a sixth source to be done after the kill", worker_log)
            assert "worker-1 stopped unexpectedly (exit -9); restarting it" in log.read_text(errors="replace")
            kids = _children(lore_up)
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches make and `lore up`
            proc.wait(90)
    text = log.read_text(errors="replace")
    assert "stopped" in text, text[-3000:]
    assert not any(_alive(pid) for pid in kids)
    assert not _listening(port)
    # The start-up lines say where the wiki is, the URL, and which model endpoint is used.
    assert str(repo.resolve()) in text
    assert api in text
    assert fake.base_url in text


@pytest.mark.slow
def test_a_hard_kill_loses_nothing_and_the_next_start_resumes(tmp_path, shared_data):
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    log = tmp_path / "up.log"
    names = FIVE + ("ops/moj-adrs/004-use-kubernetes-for-container-management.md",)
    with FakeLLM(latency_ms=1500) as fake:
        env = _env(port, fake, LORE_WORKER__LEASE_S="600")

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "lore"), "up"], cwd=tmp_path, env=env,
                stdout=log.open("ab"), stderr=subprocess.STDOUT,
            )

        first = start()
        try:
            _wait(lambda: "ready" in log.read_text(errors="replace"), 240, "`lore up` to be ready", log)
            kids = _children(first.pid)
            _copy_into(tmp_path / "ingest", shared_data, names)
            _wait(lambda: len(_sources(api)) == len(names), 120, "intake of every file", log)
            _wait(lambda: any(s["status"] != "pending" for s in _sources(api)), 120, "work to start", log)
        finally:
            first.send_signal(signal.SIGKILL)  # no clean shutdown at all
            first.wait(30)
        # The children notice their parent died and leave (nothing orphaned holds the port or the queue).
        _wait(lambda: not any(_alive(pid) for pid in kids), 60, "the children to exit")
        unfinished = [s for s in _sources_from_db(tmp_path) if s[1] != "done"]
        assert unfinished, "everything finished before the kill; the test proves nothing"

        second = start()
        try:
            _wait(lambda: "ready" in log.read_text(errors="replace").rsplit("starting", 1)[-1], 240, "restart", log)

            def all_done() -> bool:
                rows = _sources_from_db(tmp_path)
                assert not [r for r in rows if r[1] == "failed"], rows
                sources_done = len(rows) == len(names) and all(r[1] == "done" for r in rows)
                return sources_done and all(state == "done" for _k, state, _a in _jobs_from_db(tmp_path))

            worker_log = tmp_path / "data" / "logs" / "worker-1.log"
            _wait(all_done, 300, "every source and job to finish after the restart", worker_log)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(90)
    assert "resuming" in log.read_text(errors="replace").rsplit("starting", 1)[-1]
    _git(tmp_path / "data" / "wiki", "fsck", "--strict")


def _sources_from_db(root: Path) -> list[tuple[str, str]]:
    import sqlite3

    db = root / "data" / "lore.db"
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
        return [(str(a), str(b)) for a, b in con.execute("SELECT origin, status FROM sources")]


def _jobs_from_db(root: Path) -> list[tuple[str, str, int]]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(root / "data" / "lore.db", timeout=30)) as con:
        return [(str(k), str(s), int(a)) for k, s, a in con.execute("SELECT kind, state, attempts FROM jobs")]


def test_one_lore_up_per_data_folder(tmp_path):
    with data_dir_lock(tmp_path), pytest.raises(RuntimeFailure, match="already running"):  # noqa: SIM117
        with data_dir_lock(tmp_path):
            pass


def test_up_stops_cleanly_when_start_up_fails(tmp_path, monkeypatch):
    from rich.console import Console

    from lore.config import load_settings

    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("LORE_")]:
        monkeypatch.delenv(key)
    missing = tmp_path / "no-model.gguf"
    settings = load_settings(llm={"local_model_path": missing, "local_port": free_port()})
    console = Console(file=open(os.devnull, "w"), width=200)  # noqa: SIM115
    with pytest.raises(Exception, match="no-model.gguf"):
        Up(settings, console).run()
    # the lock is released: a second attempt fails the same way, not with "already running"
    with pytest.raises(Exception, match="no-model.gguf"):
        Up(settings, console).run()


def test_killed_children_are_always_restarted_failing_ones_only_until_they_crash_loop(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from lore.config import load_settings
    from lore.process import Child

    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("LORE_")]:
        monkeypatch.delenv(key)
    out = io.StringIO()
    up = Up(load_settings(), Console(file=out, width=200))
    failing = Child("worker-1", ["sh", "-c", "exit 3"])
    killed = Child("worker-2", ["sh", "-c", "kill -9 $$"])
    for child in (failing, killed):
        child.start()
    for _ in range(3 * Up.MAX_RESTARTS):  # killed ones: restarted every time, however often
        killed.proc.wait(10)
        assert up._restart(killed, killed.poll())
    for _ in range(Up.MAX_RESTARTS):  # failing by itself: restarted up to the limit ...
        failing.proc.wait(10)
        assert up._restart(failing, failing.poll())
    failing.proc.wait(10)
    assert not up._restart(failing, failing.poll())  # ... then it is a crash loop and everything stops
    killed.stop()
    text = out.getvalue()
    assert "worker-2 stopped unexpectedly (exit -9); restarting it" in text
    assert f"worker-1 stopped unexpectedly (exit 3) {Up.MAX_RESTARTS + 1} times within 60 s; stopping" in text
