"""Real services for integration tests: installed from Debian packages and started on loopback.

Nothing here is a mock: PostgreSQL and Redis are the Debian builds, installed with apt-get when
missing (the test run is root on these machines) and started in a private folder on a free port.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_APT_UPDATED = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def apt_install(*packages: str) -> None:
    """Install Debian packages (idempotent); requires root, as on the project's machines."""
    global _APT_UPDATED
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _APT_UPDATED:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        _APT_UPDATED = True
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env, capture_output=True)


def ensure_binary(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        apt_install(package)
        path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} not found even after apt-get install {package}")
    return path


def _pg_bindir() -> Path:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not dirs:
        apt_install("postgresql")
        dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not dirs:
        raise RuntimeError("PostgreSQL binaries not found after apt-get install postgresql")
    return Path(dirs[-1])


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throwaway PostgreSQL cluster on loopback; yield a SQLAlchemy URL for database `lore`."""
    bindir = _pg_bindir()
    base = Path(tempfile.mkdtemp(prefix="lore-pg-"))
    data = base / "data"
    port = free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [*run_as, str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
         "-k", str(base), "-c", "fsync=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        for _ in range(50):
            r = subprocess.run(
                [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                 "CREATE DATABASE lore"],
                capture_output=True,
            )
            if r.returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"could not create database: {r.stderr.decode()}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/lore"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)


class RedisServer:
    """A real redis-server with an append-only file, restartable on the same port and data."""

    def __init__(self) -> None:
        self.binary = ensure_binary("redis-server", "redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="lore-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(15)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
