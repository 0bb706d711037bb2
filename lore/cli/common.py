"""What every command group shares: the two consoles, settings, JSON output, the wiring, data-path checks.

Progress and errors go to ``console`` (stderr); reports a person reads and JSON go to stdout (``report``,
``emit_json``), so a command's stdout can be piped to ``jq`` or a file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from lore.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from lore.wiring import Wiring
    from search.embedding import SentenceTransformerEmbedder

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
    """Write ``obj`` to stdout as one indented JSON document (keys sorted; dates and paths as strings)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def open_wiring(s: Settings, *, migrate: bool = True) -> Iterator[Wiring]:
    """The composition root for one command, closed when the command is done.

    Args:
        s: the settings.
        migrate: upgrade the ledger's schema first (commands that only read the ledger pass False).
    """
    from lore.wiring import Wiring
    from lore.wiring import migrate as run_migrate

    if migrate:
        run_migrate(s)
    wiring = Wiring(s)
    try:
        yield wiring
    finally:
        wiring.close()


def sentence_embedder(s: Settings) -> SentenceTransformerEmbedder:
    """The configured embedding model (``LORE_EMBEDDING__*``), for the evaluations that embed directly."""
    from search.embedding import SentenceTransformerEmbedder

    e = s.embedding
    return SentenceTransformerEmbedder(e.model_path, batch_size=e.batch_size, threads=e.torch_threads or None)


def _check_paths(ctx: typer.Context, param: typer.CallbackParam, value: object, *, kind: str) -> object:
    """Fail with the option to pass when a data path is missing, and say so when it was the default."""
    if value is None or ctx.resilient_parsing:
        return value
    paths = list(value) if isinstance(value, list | tuple) else [value]
    option = max(param.opts, key=len)
    for path in paths:
        assert isinstance(path, Path)
        if path.is_dir() if kind == "folder" else path.is_file():
            continue
        where = ""
        source = ctx.get_parameter_source(param.name) if param.name else None
        if getattr(source, "name", None) == "DEFAULT":  # typer's own click: compare the enum by name
            where = f" (the default, relative to {Path.cwd()})"
        raise typer.BadParameter(f"no such {kind}: {path}{where}; pass {option} {kind.upper()}")
    return value


def existing_folder(ctx: typer.Context, param: typer.CallbackParam, value: object) -> object:
    """Option callback: every path given (or defaulted) is a folder, else a usage error naming the option."""
    return _check_paths(ctx, param, value, kind="folder")


def existing_file(ctx: typer.Context, param: typer.CallbackParam, value: object) -> object:
    """Option callback: every path given (or defaulted) is a file, else a usage error naming the option."""
    return _check_paths(ctx, param, value, kind="file")
