"""A central bare repository served on loopback by ``git daemon``, for benchmarks and tests.

``git daemon --enable=receive-pack`` serves every repository below a base folder over ``git://``
without authentication, which is fine on 127.0.0.1 for a benchmark and never for a deployment
(docs/operations.md shows ssh or https for real use).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_bare(path: Path, branch: str = "main") -> Path:
    """Create an empty bare repository that refuses non-fast-forward pushes and checks objects."""
    subprocess.run(["git", "init", "-q", "--bare", f"--initial-branch={branch}", str(path)], check=True)
    for key, value in (("receive.denyNonFastForwards", "true"), ("receive.fsckObjects", "true"),
                       ("core.logAllRefUpdates", "true")):
        subprocess.run(["git", "config", key, value], cwd=path, check=True)
    return path


@contextlib.contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """Serve the bare repositories under ``base`` on loopback; yields ``git://127.0.0.1:<port>``."""
    port = _free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--informative-errors",
         f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"git daemon did not start on port {port}: {err.strip()}")
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
