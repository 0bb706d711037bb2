"""Running Lore: ``up`` (everything in one process tree), ``serve``, ``worker``, ``beat``, ``watch``, ``ingest``.

Each is a thin front for ``lore.runtime`` (or ``lore.ingest_cli``); ``lore up`` starts the others as
``python -m lore.cli ...`` children.
"""

from __future__ import annotations

from pathlib import Path

import typer

from lore.cli.common import console, open_wiring, settings


def up(
    concurrency: int = typer.Option(None, help="Worker processes (default LORE_WORKER__CONCURRENCY)."),
    pool: str = typer.Option(
        "solo", help="solo: N single-process workers, each restarted if it dies; prefork: one worker, N children."
    ),
    verbose: bool = typer.Option(False, help="Show the children's logs here instead of <data_dir>/logs."),
) -> None:
    """Run everything on this machine: model, worker, watcher on ./ingest, and the API on :8000."""
    from lore.runtime import up as run_up

    if pool not in ("prefork", "solo"):
        console.print("[red]--pool must be prefork or solo[/red]")
        raise typer.Exit(2)
    raise typer.Exit(run_up(settings(), console, concurrency=concurrency, pool=pool, verbose=verbose))


def serve(
    host: str = typer.Option(None, help="Bind address (default LORE_API__HOST)."),
    port: int = typer.Option(None, help="Port (default LORE_API__PORT)."),
    no_migrate: bool = typer.Option(False, "--no-migrate", help="Skip the schema upgrade at start-up."),
) -> None:
    """Serve the API, web UI and MCP (production: one or more behind a proxy)."""
    from lore.runtime import serve as run_serve

    run_serve(settings(), host=host, port=port, run_migrations=not no_migrate)


def worker(
    concurrency: int = typer.Option(None, help="Worker processes (default LORE_WORKER__CONCURRENCY)."),
    queues: str = typer.Option("ingest,synth,render", help="Comma-separated queues to consume."),
    pool: str = typer.Option("prefork", help="Celery pool: prefork or solo."),
    no_migrate: bool = typer.Option(False, "--no-migrate", help="Skip the schema upgrade at start-up."),
) -> None:
    """Run a Celery worker on the configured broker (the local one by default)."""
    from lore.runtime import ALL_QUEUES
    from lore.runtime import worker as run_worker

    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(names) - set(ALL_QUEUES))
    if unknown or not names:
        console.print(f"[red]unknown queue(s) {unknown}; choose from {', '.join(ALL_QUEUES)}[/red]")
        raise typer.Exit(2)
    run_worker(settings(), concurrency=concurrency, queues=names, pool=pool, run_migrations=not no_migrate)


def beat() -> None:
    """Run the scheduler that sweeps due and stuck jobs back onto the queue (run exactly one)."""
    from lore.runtime import beat as run_beat

    run_beat(settings())


def watch() -> None:
    """Watch the ingest folder and take in every settled file."""
    from lore.runtime import watch as run_watch

    run_watch(settings(), console)


def ingest(
    paths: list[Path] = typer.Argument(..., help="Files and folders to take in."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Only enqueue; do not wait for the sources."),
    timeout: float = typer.Option(None, help="Stop waiting after this many seconds (exit 1)."),
) -> None:
    """Take files and folders in and follow each source to done or failed."""
    from lore.ingest_cli import run_ingest

    with open_wiring(settings()) as wiring:
        try:
            code = run_ingest(wiring, list(paths), console, wait=not no_wait, timeout_s=timeout)
        except FileNotFoundError as exc:
            console.print(f"[red]{exc}[/red]")
            code = 2
    raise typer.Exit(code)
