"""Container health checks: ``python -m lore.healthcheck api|worker|beat|watcher`` (exit 0 = healthy).

- ``api``: ``GET /health/live`` on the local port answers 200;
- ``worker``: a Celery worker node on this host answers a remote-control ping through the broker;
- ``beat``: beat's scheduler touched its heartbeat file within three sweep intervals;
- ``watcher``: ``lore watch`` touched its heartbeat file recently.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from lore.config import ConfigError, Settings, load_settings

CHECKS = ("api", "worker", "beat", "watcher")


def check_api(settings: Settings) -> str | None:
    import httpx

    host = "127.0.0.1" if settings.api.host in ("0.0.0.0", "::") else settings.api.host
    try:
        resp = httpx.get(f"http://{host}:{settings.api.port}/health/live", timeout=5.0)
    except httpx.HTTPError as exc:
        return f"api unreachable: {exc}"
    return None if resp.status_code == 200 else f"api answered {resp.status_code}"


def check_worker(settings: Settings) -> str | None:
    from lore.wiring import Wiring

    app = Wiring(settings).celery
    replies = app.control.ping(timeout=5.0) or []
    here = "@" + socket.gethostname()
    if any(name.endswith(here) for reply in replies for name in reply):
        return None
    return f"no worker on {socket.gethostname()} answered a ping"


def check_heartbeat(path: Path, max_age_s: float) -> str | None:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return f"{path} does not exist yet"
    return None if age <= max_age_s else f"{path} is {age:.0f}s old (limit {max_age_s:.0f}s)"


def run(check: str, settings: Settings) -> str | None:
    """Run one named check; returns None when healthy, else the reason."""
    if check == "api":
        return check_api(settings)
    if check == "worker":
        return check_worker(settings)
    if check == "beat":
        from workers.beat_scheduler import HEARTBEAT

        return check_heartbeat(HEARTBEAT, max(3 * settings.worker.sweep_interval_s, 90.0))
    if check == "watcher":
        from lore.runtime import HEARTBEAT_EVERY_S, WATCHER_HEARTBEAT

        return check_heartbeat(WATCHER_HEARTBEAT, 6 * HEARTBEAT_EVERY_S)
    return f"unknown check {check!r}; choose from {', '.join(CHECKS)}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write(f"usage: python -m lore.healthcheck {{{'|'.join(CHECKS)}}}\n")
        return 2
    try:
        problem = run(args[0], load_settings())
    except ConfigError as exc:
        problem = str(exc)
    if problem:
        sys.stderr.write(problem + "\n")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
