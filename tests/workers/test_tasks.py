"""Thin tasks: the per-process context is built lazily, once per process, and again after a fork."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from workers import tasks


class _Synth:
    def __init__(self) -> None:
        self.dispatched: list[list[int]] = []

    def dispatch(self, job_ids: list[int]) -> None:
        self.dispatched.append(job_ids)


def _make_factory(built: list[int]):
    def factory() -> tasks.WorkerContext:
        built.append(os.getpid())
        return tasks.WorkerContext(
            synth=_Synth(),  # type: ignore[arg-type]
            intake_file=lambda path: [7, 8] if path.name == "a.md" else [],
            sweep=lambda: 3,
            extra={"pid": os.getpid()},
        )

    return factory


@pytest.fixture(autouse=True)
def _clean_factory():
    yield
    tasks.set_context_factory(None)


def test_context_is_built_lazily_and_once_per_process():
    built: list[int] = []
    tasks.set_context_factory(_make_factory(built))
    assert built == []  # registering builds nothing
    first = tasks.current_context()
    assert tasks.current_context() is first
    assert built == [os.getpid()]


def _child(queue) -> None:
    ctx = tasks.current_context()
    queue.put((ctx.extra["pid"], os.getpid()))


def test_a_forked_child_builds_its_own_context():
    built: list[int] = []
    tasks.set_context_factory(_make_factory(built))
    parent = tasks.current_context()
    mp = multiprocessing.get_context("fork")
    queue = mp.Queue()
    proc = mp.Process(target=_child, args=(queue,))
    proc.start()
    ctx_pid, child_pid = queue.get(timeout=30)
    proc.join(30)
    assert ctx_pid == child_pid != os.getpid()
    assert parent.extra["pid"] == os.getpid()


def test_without_a_factory_tasks_refuse_to_run():
    tasks.set_context_factory(None)
    with pytest.raises(tasks.ContextNotConfigured, match="lore worker"):
        tasks.current_context()


def test_ingest_task_dispatches_what_intake_created(tmp_path):
    tasks.set_context_factory(_make_factory([]))
    assert tasks.ingest_file(str(tmp_path / "a.md")) == [7, 8]
    assert tasks.ingest_file(str(tmp_path / "b.md")) == []
    assert tasks.current_context().synth.dispatched == [[7, 8]]  # nothing sent for a file with no jobs


def test_sweep_task_runs_the_registered_sweep():
    tasks.set_context_factory(_make_factory([]))
    assert tasks.sweep_jobs() == 3
