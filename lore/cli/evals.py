"""``lore eval retrieval|tune-retrieval|grounding|conflicts|qa``: quality evaluations on the shared data sets.

The data sets default to ``../shared/data/...`` (the layout of the project's machines); a missing one is
a usage error that names the option to pass instead. An evaluation on the embedded model starts it
through ``lore.llama_server.embedded_server`` (as ``lore up`` does), its output in a log file, so stdout
stays pure JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from lore.cli.common import console, emit_json, existing_file, existing_folder, sentence_embedder, settings

app = typer.Typer(help="Quality evaluations on the shared data sets.", no_args_is_help=True)

DATA = Path("../shared/data")


@app.command("tune-retrieval")
def eval_tune_retrieval(
    sets: list[Path] = typer.Option(
        [DATA / "retrieval" / "musique-100", DATA / "retrieval" / "ramdocs-dev"],
        "--set",
        help="Folders with corpus.jsonl and questions.jsonl (two or more).",
        callback=existing_folder,
    ),
    as_json: bool = typer.Option(True, "--json/--no-json", help="Print one JSON object."),
) -> None:
    """Tune the query-time search settings on each set, score them on the others, and tune on all jointly."""
    from bench.eval_retrieval import EvalInputError
    from bench.tune_retrieval import tune

    embedder = sentence_embedder(settings())
    try:
        report = tune(sets, embedder, log=lambda m: console.print(m, highlight=False))
    except (EvalInputError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    emit_json(report)


@app.command("retrieval")
def eval_retrieval(
    corpus: Path = typer.Option(..., "--corpus", help="Folder with corpus.jsonl and questions.jsonl."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    limit: int = typer.Option(None, "--limit", min=1, help="Score only the first N questions."),
) -> None:
    """Recall@2/5/10, Full@5/10 and MRR of hybrid, BM25, dense and RRF retrieval on a corpus."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from bench.eval_retrieval import EvalInputError, evaluate

    embedder = sentence_embedder(settings())
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


@app.command("grounding")
def eval_grounding(
    data_dir: Path = typer.Option(DATA, "--data", help="Folder with conflicts/ and ops/.", callback=existing_folder),
    spans: int = typer.Option(1500, help="How many spans to draw."),
    seed: int = typer.Option(1, help="Seed of the draw and the copies."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """How the grounding check treats near-verbatim and altered copies of real spans (no model)."""
    from bench.eval_grounding import run

    result = run(data_dir, n=spans, seed=seed, progress=lambda i, n: console.print(f"span {i}/{n}"))
    emit_json(result if as_json else {k: v for k, v in result.items() if k != "examples"})


@app.command("conflicts")
def eval_conflicts(
    set_path: Path = typer.Option(
        DATA / "conflicts" / "ramdocs-dev.jsonl", "--set", help="RAMDocs JSONL.", callback=existing_file
    ),
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
    s = settings()
    with contextlib.ExitStack() as stack:
        if fake:
            from bench.fake_llm import FakeLLM

            urls = [stack.enter_context(FakeLLM(seed=1)).base_url]
        elif uses_embedded_model(s):
            from lore.llama_server import embedded_server

            log_path = s.paths.data_dir / "logs" / "eval-llama-server.log"  # stdout stays pure JSON
            urls = [stack.enter_context(embedded_server(s, log_path)).base_url]
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
            embedder = None if no_embedder else sentence_embedder(s)

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


@app.command("qa")
def eval_qa(
    docs: Path = typer.Option(
        DATA / "ops" / "dfds-postmortems" / "docs", help="Folder of documents.", callback=existing_folder
    ),
    questions: Path = typer.Option(
        DATA / "qa" / "dfds-postmortems-qa.jsonl", help="Questions (the format of shared/data/qa).",
        callback=existing_file,
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
            from lore.llama_server import embedded_server

            stack.enter_context(embedded_server(s, folder / "logs" / "eval-llama-server.log"))  # stdout: JSON only
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
