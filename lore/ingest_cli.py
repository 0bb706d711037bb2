"""``lore ingest PATH...``: take files and folders in, then follow each source to ``done`` or ``failed``.

Files go through the same intake service as the watcher and the upload endpoint; the jobs it creates
are dispatched to the queue after each commit, so a running ``lore up`` (or ``lore worker``) does the
work. Without ``--no-wait`` the command polls the ledger and shows a progress bar until every source
has finished, then prints one line per source. The exit code is 1 when any file was refused or any
source failed (or the wait timed out).
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from lore.wiring import Wiring
from store.models import Job, Source

FINISHED = {"done", "failed", "retracted", "replaced"}
NO_WORKER_HINT_S = 30.0


@dataclass
class Row:
    """One input file and what became of it."""

    path: Path
    intake: str  # the intake status: new | new_version | moved | known | failed | refused
    source_id: str | None
    status: str  # the source's ledger status, or the intake status when there is no source
    detail: str = ""


def expand(paths: Iterable[Path], ignore_globs: Iterable[str]) -> Iterator[tuple[Path, Path | None]]:
    """Each file to take in, with the folder its origin is relative to (None for a file named directly).

    Names matching ``ignore_globs`` are skipped inside folders; a path named directly is always taken.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    globs = tuple(ignore_globs)
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            root = path.resolve()
            for folder, dirs, files in os.walk(root, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatchcase(d, g) for g in globs))
                for name in sorted(files):
                    if not any(fnmatch.fnmatchcase(name, g) for g in globs):
                        yield Path(folder) / name, root
        elif path.exists() or path.is_symlink():
            yield path, None  # intake refuses symlinks and special files with a reason
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")


def _poll(wiring: Wiring, ids: list[str]) -> tuple[dict[str, tuple[str, str | None]], bool]:
    """Current (status, error) per source id, and whether any of their jobs has been picked up yet."""
    with wiring.session_factory() as session:
        rows = session.execute(
            select(Source.id, Source.status, Source.error, Source.warning).where(Source.id.in_(ids))
        ).all()
        started = session.scalar(
            select(Job.id).where(Job.source_id.in_(ids), (Job.attempts > 0) | (Job.state != "queued")).limit(1)
        )
    # A done source's warning (e.g. no facts added) shows where a failed one's reason does.
    return {sid: (status, error or warning) for sid, status, error, warning in rows}, started is not None


def run_ingest(
    wiring: Wiring,
    paths: list[Path],
    console: Console,
    *,
    wait: bool = True,
    timeout_s: float | None = None,
    poll_s: float = 1.0,
) -> int:
    """Take ``paths`` in, optionally wait for every source to finish, print a table; returns the exit code."""
    files = list(expand(paths, wiring.settings.ingest.ignore_globs))
    rows: list[Row] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("taking in", total=len(files))
        for path, root in files:
            result = wiring.ingest_path(path, root=root)
            status = result.status if result.status in ("refused", "failed") else "pending"
            rows.append(Row(path, result.status, result.source_id, status, result.reason or ""))
            progress.advance(task)
    tracked = sorted({r.source_id for r in rows if r.source_id and r.intake not in ("refused", "failed")})
    timed_out = False
    if wait and tracked:
        timed_out = _follow(wiring, rows, tracked, console, columns, timeout_s, poll_s)
    else:
        statuses, _ = _poll(wiring, tracked) if tracked else ({}, False)
        for row in rows:
            if row.source_id in statuses and row.intake not in ("refused", "failed"):
                row.status = statuses[row.source_id][0]
    _print_table(rows, console, waited=wait)
    if timed_out:
        console.print(f"[red]timed out after {timeout_s:.0f}s[/red]; the sources keep going in the background")
    bad = [r for r in rows if r.status in ("failed", "refused")]
    return 1 if bad or timed_out else 0


def _follow(
    wiring: Wiring,
    rows: list[Row],
    tracked: list[str],
    console: Console,
    columns: tuple[object, ...],
    timeout_s: float | None,
    poll_s: float,
) -> bool:
    """Poll the ledger until every tracked source finished; returns True when the wait timed out."""
    start = time.monotonic()
    hinted = False
    with Progress(*columns, console=console) as progress:  # type: ignore[arg-type]
        task = progress.add_task("processing", total=len(tracked))
        while True:
            statuses, started = _poll(wiring, tracked)
            finished = [sid for sid in tracked if statuses.get(sid, ("pending", None))[0] in FINISHED]
            failed = sum(1 for sid in finished if statuses[sid][0] == "failed")
            progress.update(
                task, completed=len(finished), description=f"processing ({failed} failed)" if failed else "processing"
            )
            for row in rows:
                if row.source_id in statuses and row.intake not in ("refused", "failed"):
                    status, error = statuses[row.source_id]
                    row.status = status
                    row.detail = error or (row.detail if status == "done" else "")
                    if status == "done" and error:
                        row.status = "done (warning)"
            if len(finished) == len(tracked):
                return False
            elapsed = time.monotonic() - start
            if timeout_s is not None and elapsed >= timeout_s:
                return True
            if not started and not hinted and elapsed >= NO_WORKER_HINT_S:
                progress.console.print(
                    "[yellow]no job has started yet: is `lore up` (or `lore worker`) running?[/yellow]"
                )
                hinted = True
            time.sleep(poll_s)


def _print_table(rows: list[Row], console: Console, *, waited: bool) -> None:
    table = Table(show_lines=False)
    table.add_column("source")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    styles = {"done": "green", "done (warning)": "yellow", "failed": "red", "refused": "red"}
    for row in rows:
        status = row.status if waited or row.intake in ("refused", "failed") else f"{row.intake} ({row.status})"
        style = styles.get(row.status, "")
        detail = row.detail or (f"known source {row.source_id[:12]}" if row.intake == "known" and row.source_id else "")
        table.add_row(str(row.path), f"[{style}]{status}[/{style}]" if style else status, detail)
    console.print(table)
