"""``lore disputes list|show|resolve``: review where sources disagree (the ledger's contradictions)."""

from __future__ import annotations

from typing import Any

import typer

from lore.cli.common import console, emit_json, open_wiring, report, settings

app = typer.Typer(help="Disputes between sources: list, show, resolve.", no_args_is_help=True)


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


@app.command("list")
def disputes_list(
    status: str = typer.Option("open", help="open, resolved or all."),
    entity: str = typer.Option(None, help="Only this entity's (name, alias or slug)."),
    limit: int = typer.Option(50, min=1, max=1000, help="Most disputes to show."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Disputes between sources, newest first."""
    from api.reads import ReadService
    from search.tiers import QueryEngine

    if status not in ("open", "resolved", "all"):
        raise typer.BadParameter("--status must be open, resolved or all")
    with open_wiring(settings()) as wiring:
        engine = QueryEngine(wiring.session_factory, wiring.store, None)
        reads = ReadService(wiring.store, wiring.session_factory, engine)
        rows, total = reads.contradictions(None if status == "all" else status, limit=limit, entity=entity,
                                           with_total=True)
        out = [_dispute_json(r) for r in rows]
    if as_json:
        emit_json({"contradictions": out, "total": total})
        return
    if not out:
        report.print(f"no {status if status != 'all' else ''} disputes".replace("  ", " "))
    for d in out:
        _print_dispute(d)
    report.print(f"{len(out)} of {total}")


@app.command("show")
def disputes_show(
    dispute_id: int = typer.Argument(..., help="The dispute's id (see `lore disputes list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """One dispute with both claims, their quotes and sources, and any decision."""
    from sqlalchemy import select

    from store.models import Contradiction
    from store.queries import list_contradictions

    with open_wiring(settings()) as wiring, wiring.session_factory() as session:
        found = list_contradictions(session, status=None, dispute_ids=[dispute_id], limit=1)
        exists = session.scalar(select(Contradiction.id).where(Contradiction.id == dispute_id))
    if not found:
        console.print(f"[red]no dispute {dispute_id}[/red]" + (" (its claims are gone)" if exists else ""))
        raise typer.Exit(1)
    d = _dispute_json(found[0])
    if as_json:
        emit_json(d)
    else:
        _print_dispute(d)


@app.command("resolve")
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

    from store.db import unit_of_work
    from store.queries import list_contradictions
    from synth.disputes import DisputeError, resolve_dispute

    s = settings()
    reviewer = by or f"cli:{getpass.getuser()}"
    try:
        with open_wiring(s) as wiring:
            with unit_of_work(wiring.session_factory) as session:
                done = resolve_dispute(session, dispute_id, decision, reviewer=reviewer, claim=claim, note=note,
                                       max_attempts=s.worker.max_attempts)
            wiring.dispatch(list(done.job_ids))
            with wiring.session_factory() as session:
                d = _dispute_json(list_contradictions(session, status=None, dispute_ids=[dispute_id], limit=1)[0])
    except DisputeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        emit_json({"dispute": d, "changed": done.changed, "job_ids": list(done.job_ids)})
    else:
        _print_dispute(d)
        for claim_id, status in sorted(done.changed.items()):
            report.print(f"  {claim_id} is now {status}")
        report.print("the page is re-rendered by the workers (`lore up` or `lore worker`)")
