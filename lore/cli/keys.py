"""``lore keys create|list|revoke``: API keys kept hashed in the ledger, the secret shown once."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from lore.cli.common import console, emit_json, open_wiring, settings

app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


@app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="A unique name for the key (shown in logs, commit trailers, `keys list`)."),
    scope: list[str] = typer.Option(
        ..., "--scope", help="read, ingest, curate or admin (repeat for several; admin holds them all)."
    ),
) -> None:
    """Create an API key; the secret is printed once, alone on the last line of stdout."""
    from api.keys import KeyManagementError, create_key
    from store.db import unit_of_work

    try:
        with open_wiring(settings()) as wiring, unit_of_work(wiring.session_factory) as session:
            secret = create_key(session, name, scope)
    except (KeyManagementError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"created key {name!r} ({', '.join(sorted(set(scope)))}); store it now, it is not shown again:")
    sys.stdout.write(secret + "\n")


@app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json", help="Print a JSON list.")) -> None:
    """List keys: name, scopes, origin, created, last used, revoked (never a secret)."""
    from dataclasses import asdict

    from rich.table import Table

    from api.keys import list_keys

    with open_wiring(settings()) as wiring, wiring.session_factory() as session:
        keys = list_keys(session)
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


@app.command("revoke")
def keys_revoke(name: str = typer.Argument(..., help="The key's name (see `lore keys list`).")) -> None:
    """Revoke a key: every later request with it gets 401 (the row stays for the record)."""
    from api.keys import NoSuchKey, revoke_key
    from store.db import unit_of_work

    try:
        with open_wiring(settings()) as wiring, unit_of_work(wiring.session_factory) as session:
            now = revoke_key(session, name)
    except NoSuchKey as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"revoked key {name!r}" if now else f"key {name!r} was already revoked")
