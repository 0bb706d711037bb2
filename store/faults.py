"""Named crash points on the write path, armed only by crash tests (setting ``LORE_FAULTS``).

A crash point is one call, ``crash_point("before_ref")``, between two steps of a write. Unarmed it
does nothing (one tuple check). Armed, it kills the current process with SIGKILL, as a power cut or
the kernel's OOM killer would: no exception handler, ``finally`` block or exit hook runs, and the
process's transactions, leases and queue messages are left exactly as they were.

The points and where they sit:

- ``after_model``: the model answered and nothing of its answer is written (extract: before grounding
  and the ledger; render: before the composed summary is cached or published).
- ``before_ref``: a git write made its objects (blobs, trees, the commit) but the branch has not moved.
- ``after_ref``: the branch moved to the new commit; the working tree is not refreshed and the flow
  that wrote has not recorded the commit in the ledger.
- ``catalog_write``: the catalog pages are rendered from the ledger and not yet published.

A spec lists faults separated by commas, each ``point[@scope][:n]``. ``scope`` limits a fault to the
work of one kind: ``synth.service.run_job`` runs each job inside :func:`fault_scope` with the job's kind
(``extract``, ``render``, ``source_page``, ``catalog``, ``retract``); a fault without a scope fires in
any. ``n`` fires on the n-th hit of the fault in this process (default 1).

At most once per marker folder: just before it kills, the point creates ``<marker_dir>/<name>.fired``
with an exclusive create and writes the pid, point, scope and hit into it as JSON. A fault whose marker
exists never fires again, so a worker restarted on the same data folder with the same settings gets past
the point, and a test reads the marker to learn which process died where.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

__all__ = ["POINTS", "Fault", "arm", "armed", "crash_point", "disarm", "fault_scope", "parse_faults"]

POINTS = ("after_model", "before_ref", "after_ref", "catalog_write")
"""Every named crash point."""

_SPEC = re.compile(r"^(?P<point>[a-z_]+)(?:@(?P<scope>[a-z_]+))?(?::(?P<hit>[1-9][0-9]{0,5}))?$")


@dataclass(frozen=True)
class Fault:
    """One armed crash point.

    Attributes:
        point: One of :data:`POINTS`.
        scope: The kind of work it is limited to, or None for any.
        hit: Fires on this hit of the fault in one process (1 = the first).
    """

    point: str
    scope: str | None = None
    hit: int = 1

    @property
    def name(self) -> str:
        """The fault as written in a spec, e.g. ``after_ref@render:2``."""
        scope = f"@{self.scope}" if self.scope else ""
        hit = f":{self.hit}" if self.hit != 1 else ""
        return f"{self.point}{scope}{hit}"

    @property
    def marker_name(self) -> str:
        """File name of its marker: the name with ``@`` and ``:`` as ``-``, plus ``.fired``."""
        return re.sub(r"[^a-z0-9_]", "-", self.name) + ".fired"


def parse_faults(spec: str) -> tuple[Fault, ...]:
    """Parse a fault spec such as ``"after_model@extract, before_ref:2"``.

    Args:
        spec: Comma-separated ``point[@scope][:n]``; empty for none.

    Returns:
        The faults in the order given, without duplicates.

    Raises:
        ValueError: An entry is malformed or names an unknown point.
    """
    faults: list[Fault] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        match = _SPEC.match(item)
        if match is None:
            raise ValueError(f"fault {item!r} is not of the form point[@scope][:n]")
        if match["point"] not in POINTS:
            raise ValueError(f"unknown crash point {match['point']!r}; known: {', '.join(POINTS)}")
        fault = Fault(match["point"], match["scope"], int(match["hit"] or 1))
        if fault not in faults:
            faults.append(fault)
    return tuple(faults)


_lock = threading.Lock()
_armed: tuple[Fault, ...] = ()
_marker_dir: Path | None = None
_hits: dict[Fault, int] = {}
_scope: ContextVar[str | None] = ContextVar("lore_fault_scope", default=None)


def arm(spec: str, marker_dir: Path) -> tuple[Fault, ...]:
    """Arm the faults of ``spec`` in this process (replacing any armed before); empty disarms.

    Args:
        spec: See :func:`parse_faults`.
        marker_dir: Folder for the ``.fired`` markers (created when a fault fires).

    Arming the same spec and folder again keeps the hit counts (every ``Wiring`` of a process arms).

    Returns:
        The armed faults.

    Raises:
        ValueError: The spec is invalid.
    """
    global _armed, _marker_dir
    faults = parse_faults(spec)
    with _lock:
        if (faults, Path(marker_dir)) != (_armed, _marker_dir):
            _armed, _marker_dir = faults, Path(marker_dir)
            _hits.clear()
    return faults


def disarm() -> None:
    """Disarm every fault in this process."""
    global _armed
    with _lock:
        _armed = ()
        _hits.clear()


def armed() -> tuple[Fault, ...]:
    """The faults armed in this process."""
    return _armed


@contextlib.contextmanager
def fault_scope(scope: str) -> Iterator[None]:
    """Run the body as work of kind ``scope`` (faults written ``point@scope`` fire only inside)."""
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)


def crash_point(point: str) -> None:
    """Kill this process with SIGKILL if a fault for ``point`` is armed, due and not yet fired.

    Args:
        point: One of :data:`POINTS`.
    """
    if not _armed:
        return
    scope = _scope.get()
    for fault in _armed:
        if fault.point != point or (fault.scope is not None and fault.scope != scope):
            continue
        with _lock:
            _hits[fault] = _hits.get(fault, 0) + 1
            due = _hits[fault] == fault.hit
        if due and _claim_marker(fault, scope):
            os.write(2, f"lore: crash point {fault.name} fired in process {os.getpid()}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)


def _claim_marker(fault: Fault, scope: str | None) -> bool:
    """Create the fault's marker; False when it exists (the fault fired before, in any process)."""
    folder = _marker_dir
    if folder is None:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder / fault.marker_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    record = {"fault": fault.name, "point": fault.point, "scope": scope, "hit": fault.hit,
              "pid": os.getpid(), "time": time.time()}
    try:
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return True
