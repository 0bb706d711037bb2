"""The ``lore`` command line (typer + rich), one module per group of commands.

``lore.cli`` builds the app from:

- ``run``: ``up``, ``serve``, ``worker``, ``beat``, ``watch``, ``ingest`` (running Lore; ``lore.runtime``)
- ``admin``: ``migrate``, ``reindex``, ``retract``, ``lint``, ``config show|docs``, ``model install|verify``
- ``keys``: ``keys create|list|revoke``; ``disputes``: ``disputes list|show|resolve``
- ``bench``: ``bench ...`` and ``fake-llm`` (the test double); ``evals``: ``eval ...``
- ``common``: the consoles, settings loading, JSON output and the data-path checks they share

Commands import their implementation lazily so ``lore --help`` stays fast and a command's heavy
dependencies (torch, llama.cpp) load only when that command runs. Progress and errors go to stderr;
reports and JSON go to stdout, so ``lore ... --json | jq`` always reads pure JSON.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

import typer

from lore.cli import admin, bench, disputes, evals, keys, run
from lore.cli.common import report

app = typer.Typer(
    help="Lore: a write-time knowledge wiki. Drop documents in ./ingest, read cited pages at :8000.",
    no_args_is_help=True,
)


def lore_version() -> str:
    """The installed ``lore`` package's version (``0+unknown`` when run from a tree that is not installed)."""
    try:
        return package_version("lore")
    except PackageNotFoundError:
        return "0+unknown"


def _print_version(value: bool) -> None:
    if value:
        report.print(f"lore {lore_version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print Lore's version and exit."
    ),
) -> None:
    pass  # the options above are eager; the app's help is the Typer's own


# Registered in the order ``lore --help`` lists them.
for _name, _command in (
    ("migrate", admin.migrate),
    ("fake-llm", bench.fake_llm),
    ("up", run.up),
    ("serve", run.serve),
    ("worker", run.worker),
    ("beat", run.beat),
    ("watch", run.watch),
    ("ingest", run.ingest),
    ("reindex", admin.reindex),
    ("retract", admin.retract),
    ("lint", admin.lint),
):
    app.command(_name)(_command)

app.add_typer(admin.model_app, name="model")
app.add_typer(bench.app, name="bench")
app.add_typer(evals.app, name="eval")
app.add_typer(admin.config_app, name="config")
app.add_typer(keys.app, name="keys")
app.add_typer(disputes.app, name="disputes")


def main() -> None:  # pragma: no cover - console entry point
    app()
