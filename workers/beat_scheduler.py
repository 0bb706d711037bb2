"""Celery beat's scheduler with a heartbeat file, so a container health check can see beat ticking.

Beat wakes at least once per sweep interval to send ``jobs.sweep``; each wake-up touches
:data:`HEARTBEAT`. A beat whose loop is stuck (or whose broker connection keeps failing before the
tick) stops touching it, and ``python -m lore.healthcheck beat`` reports it unhealthy.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from celery.beat import PersistentScheduler

HEARTBEAT = Path(tempfile.gettempdir()) / "lore-beat.alive"


def touch(path: Path) -> None:
    """Create ``path`` or move its modification time to now."""
    path.touch(exist_ok=True)


class HeartbeatScheduler(PersistentScheduler):
    """``PersistentScheduler`` that touches :data:`HEARTBEAT` on every tick."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        touch(HEARTBEAT)
        return float(super().tick(*args, **kwargs))
