"""Thin Celery tasks: take ids, call one service function, nothing else.

Task names are ``"domain.verb"``:

- ``jobs.run(job_id)``: ``synth.service.run_job(deps, job_id)``; the jobs table decides whether the job
  is runnable, so a duplicate or stale message is harmless (it returns ``"skipped"``);
- ``ingest.file(path)``: the intake service for one file, then dispatch of the jobs it created;
- ``jobs.sweep()``: :func:`workers.sweep.sweep`, re-sending due and stuck jobs.

What a task needs (engine, git store, model client) is a :class:`WorkerContext` built by a factory
that the composition root registers with :func:`set_context_factory`. It is built lazily, on the first
task in each process, and again whenever the process id changes: a prefork child never uses an engine,
a connection pool or an HTTP client created in its parent before the fork.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import Celery

if TYPE_CHECKING:  # pragma: no cover
    from synth.deps import SynthDeps

log = logging.getLogger(__name__)

IntakeFile = Callable[[Path], list[int]]
"""Takes a file in, commits, and returns the ids of the jobs it created (not yet dispatched)."""


@dataclass
class WorkerContext:
    """Per-process collaborators of the tasks.

    Attributes:
        synth: the synthesis dependencies handed to ``synth.service.run_job``.
        intake_file: the intake service bound to its store and limits; None when this process
            does not take files in.
        sweep: re-sends due and stuck jobs; returns how many it sent.
        close: releases what the context holds (engine, HTTP clients) when the process ends.
    """

    synth: SynthDeps
    intake_file: IntakeFile | None = None
    sweep: Callable[[], int] | None = None
    close: Callable[[], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ContextNotConfigured(RuntimeError):
    """A task ran in a process where no context factory was registered (start workers with `lore worker`)."""


_lock = threading.Lock()
_factory: Callable[[], WorkerContext] | None = None
_context: tuple[int, WorkerContext] | None = None


def set_context_factory(factory: Callable[[], WorkerContext] | None) -> None:
    """Register how this process builds its :class:`WorkerContext` (called by ``lore.wiring``).

    Registering drops a context built earlier in this process, so the next task builds a fresh one.
    """
    global _factory, _context
    with _lock:
        old = _context
        _factory = factory
        _context = None
    if old is not None and old[0] == os.getpid() and old[1].close is not None:
        old[1].close()


def current_context() -> WorkerContext:
    """This process's context, built on first use after start or fork.

    Raises:
        ContextNotConfigured: no factory was registered in this process.
    """
    global _context
    pid = os.getpid()
    ctx = _context
    if ctx is not None and ctx[0] == pid:
        return ctx[1]
    with _lock:
        if _context is not None and _context[0] == pid:
            return _context[1]
        if _factory is None:
            raise ContextNotConfigured("no worker context factory registered; start workers with `lore worker`")
        built = _factory()
        _context = (pid, built)
        return built


def run_job(job_id: int) -> str:
    """``jobs.run``: run one job from the jobs table; returns the service's outcome."""
    from synth.service import run_job as run

    return run(current_context().synth, int(job_id))


def ingest_file(path: str) -> list[int]:
    """``ingest.file``: take one file in and dispatch the jobs it created after the commit."""
    ctx = current_context()
    if ctx.intake_file is None:
        raise ContextNotConfigured("this worker has no intake service configured")
    job_ids = ctx.intake_file(Path(path))
    if job_ids:
        ctx.synth.dispatch(job_ids)
    return job_ids


def sweep_jobs() -> int:
    """``jobs.sweep``: re-send due and stuck jobs; returns how many were sent."""
    ctx = current_context()
    if ctx.sweep is None:
        raise ContextNotConfigured("this worker has no sweep configured")
    return ctx.sweep()


def register(app: Celery) -> None:
    """Register the tasks on ``app`` under their ``domain.verb`` names."""
    app.task(name="jobs.run", ignore_result=True)(run_job)
    app.task(name="ingest.file", ignore_result=True)(ingest_file)
    app.task(name="jobs.sweep", ignore_result=True)(sweep_jobs)
