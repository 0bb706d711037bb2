"""``lore bench ...`` (each prints one JSON object) and ``lore fake-llm``, the test double they run against.

The document sets default to ``../shared/data/...`` (the layout of the project's machines); a missing
one is a usage error that names the option to pass instead.
"""

from __future__ import annotations

from pathlib import Path

import typer

from lore.cli.common import console, emit_json, existing_folder

app = typer.Typer(help="Benchmarks; each prints one JSON object.", no_args_is_help=True)

POSTMORTEMS = Path("../shared/data/ops/dfds-postmortems/docs")
OPS = Path("../shared/data/ops")


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


@app.command("ingest")
def bench_ingest(
    docs: Path = typer.Option(POSTMORTEMS, help="Folder of documents.", callback=existing_folder),
    limit: int = typer.Option(20, help="How many documents to ingest."),
    latency_ms: float = typer.Option(200.0, help="Fake model server latency per call."),
    concurrency: int = typer.Option(4, help="Fake model server concurrency limit."),
    workers: int = typer.Option(1, help="Concurrent in-process workers."),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Sources per minute and model cost per source, against the fake model server (test double)."""
    from bench.ingest_bench import run_ingest_bench

    emit_json(run_ingest_bench(docs, limit=limit, latency_ms=latency_ms, concurrency=concurrency, workers=workers))


@app.command("queue")
def bench_queue(
    docs: Path = typer.Option(POSTMORTEMS, help="Folder of documents.", callback=existing_folder),
    limit: int = typer.Option(20, help="How many documents to ingest per run."),
    latency_ms: float = typer.Option(200.0, help="Fake model server latency per call."),
    processes: str = typer.Option("1,2,4", help="Worker process counts to measure, comma-separated."),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Sources per minute through the embedded runtime's own queue (lore worker subprocesses)."""
    from bench.queue_bench import run_queue_bench

    counts = [int(p) for p in processes.split(",") if p.strip()]
    emit_json(run_queue_bench(docs, limit=limit, latency_ms=latency_ms, processes=counts))


@app.command("contention")
def bench_contention(
    sources: int = typer.Option(64, help="Sources that all add claims to one entity."),
    workers: int = typer.Option(8, help="Concurrent in-process workers."),
    latency_ms: float = typer.Option(50.0, help="Fake model server latency per call."),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Renders and compose calls of one hot page, lost claims, and the coalescing factor."""
    from bench.ingest_bench import run_contention_bench

    emit_json(run_contention_bench(sources=sources, workers=workers, latency_ms=latency_ms))


@app.command("store")
def bench_store(
    writers: int = typer.Option(16, min=1, help="Writer processes."),
    writes: int = typer.Option(25, min=1, help="Writes per writer."),
    pages: int = typer.Option(4, min=1, help="Shared pages the writers append to."),
    remote: bool = typer.Option(False, "--remote", help="Publish to a central bare repository over loopback."),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Concurrent writers on the git store (group commit), after a single writer: speedup, lost writes."""
    from bench.store_bench import run_store_bench

    emit_json(run_store_bench(writers=writers, writes=writes, pages=pages, remote=remote))


@app.command("read")
def bench_read(
    pages: int = typer.Option(10_000, min=1, help="Generated entity pages (git + ledger)."),
    chunks: int = typer.Option(50_000, min=1, help="Raw source chunks embedded into the search index."),
    connections: str = typer.Option("1,8,32", help="Connection counts each scenario runs at, comma-separated."),
    duration: float = typer.Option(10.0, min=1, help="Seconds of one measured run (a scenario at a connection count)."),
    distinct: int = typer.Option(5000, min=1, help="Distinct passages the chunks draw from (each embedded once)."),
    workdir: Path = typer.Option(None, help="Keep the generated wiki here (default: a temporary folder)."),
    load_generator: str = typer.Option("auto", help="wrk, python, or auto (wrk if present or installable)."),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Health, page reads (JSON, HTML, 304) and GET /query (tier 3) against a plain embed-and-search, at 1, 8
    and 32 connections, driven by wrk."""
    from bench.read_bench import run_read_bench

    try:
        counts = tuple(int(c) for c in connections.split(",") if c.strip())
    except ValueError:
        raise typer.BadParameter(f"not a list of connection counts: {connections!r}") from None
    if not counts or min(counts) < 1:
        raise typer.BadParameter("connection counts must be positive")
    if load_generator not in ("auto", "wrk", "python"):
        raise typer.BadParameter("--load-generator is wrk, python or auto")
    emit_json(
        run_read_bench(
            pages=pages,
            chunks=chunks,
            connections=counts,
            duration_s=duration,
            distinct=distinct,
            workdir=workdir,
            load_generator=load_generator,
        )
    )


@app.command("corpus")
def bench_corpus(
    docs: Path = typer.Option(
        OPS, "--set", help="Folder of the document set (recursive).", callback=existing_folder
    ),
    limit: int = typer.Option(None, min=1, help="Take only the first N documents (by relative path)."),
    workers: int = typer.Option(1, min=1, help="Concurrent in-process workers."),
    min_claims: int = typer.Option(2, help="Lint: entity pages citing fewer claims are stubs."),
    dispute_days: int = typer.Option(30, min=0, help="Lint: disputes open longer than this are reported."),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Build a wiki from every document of a set with the fake model server (test double), then lint it."""
    from bench.corpus_bench import run_corpus_bench

    try:
        emit_json(run_corpus_bench(docs, limit=limit, workers=workers, min_claims=min_claims,
                                   dispute_days=dispute_days))
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command("scale")
def bench_scale(
    hosts: int = typer.Option(3, min=1, help="Hosts: a data folder, a clone and one worker each."),
    workers_per_host: int = typer.Option(2, min=1, help="Worker processes per host."),
    sources: int = typer.Option(60, min=1, help="Documents taken in, round-robin through the hosts."),
    entities: int = typer.Option(4, min=1, max=4, help="Shared systems the documents' claims are about."),
    latency_ms: float = typer.Option(50.0, help="Fake model server latency per call."),
    timeout: float = typer.Option(1200.0, min=10, help="Longest the work may take, in seconds."),
    workdir: Path = typer.Option(None, help="Keep every folder (hosts, central repository, logs) here."),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Hosts publishing one wiki through a central git repository (git daemon, PostgreSQL, Redis, fake model)."""
    from bench.scale_bench import run_scale_bench

    try:
        emit_json(run_scale_bench(hosts=hosts, workers_per_host=workers_per_host, sources=sources,
                                  entities=entities, latency_ms=latency_ms, timeout_s=timeout, workdir=workdir))
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command("chaos")
def bench_chaos(
    docs: Path = typer.Option(OPS, help="Folder of documents (recursive, .md).", callback=existing_folder),
    duration: float = typer.Option(120.0, min=5, help="Seconds of chaos (ingest, kills, model faults)."),
    rate: float = typer.Option(20.0, min=1, help="Documents dropped into the ingest folder per minute."),
    workers: int = typer.Option(2, min=1, help="Prefork worker processes of `lore up`."),
    latency_ms: float = typer.Option(100.0, help="Fake model server latency per call."),
    kill_every: float = typer.Option(20.0, min=1, help="Seconds between SIGKILLs of a worker process."),
    fault_every: float = typer.Option(30.0, min=1, help="Seconds between model faults (503 outage, 500 burst)."),
    fault_s: float = typer.Option(8.0, min=0, help="Length of each model fault, in seconds."),
    lease_s: int = typer.Option(30, min=10, help="Job lease: a killed worker's job is re-sent after this."),
    drain_timeout: float = typer.Option(300.0, min=1, help="Longest wait for the queue to drain afterwards."),
    seed: int = typer.Option(7, help="Seed of document order, victims and fault rolls."),
    victims: str = typer.Option("any", help="any: a busy child, else an idle one; busy: only busy ones."),
    workdir: Path = typer.Option(None, help="Keep the soak's folder (data, logs, wiki) here (default: temporary)."),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Soak `lore up` against the fake model server (test double) while killing workers and failing the model."""
    from bench.chaos_bench import ChaosConfig, run_chaos_bench

    if victims not in ("any", "busy"):
        console.print("[red]--victims must be any or busy[/red]")
        raise typer.Exit(2)
    config = ChaosConfig(duration_s=duration, rate_per_min=rate, workers=workers, latency_ms=latency_ms,
                         kill_every_s=kill_every, fault_every_s=fault_every, fault_s=fault_s, lease_s=lease_s,
                         drain_timeout_s=drain_timeout, seed=seed, victims=victims)
    try:
        emit_json(run_chaos_bench(docs, config, workdir=workdir))
    except (ValueError, RuntimeError, TimeoutError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
