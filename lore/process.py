"""Child processes of ``lore up``: started in their own process group, stopped in order, never orphaned.

Each child runs in a new session, so a Ctrl-C in the terminal reaches only ``lore up``, which then
stops the children one by one in the order it chooses (producers, then workers, then the model). On
Linux each child also asks the kernel to send it SIGTERM if ``lore up`` itself dies (``PR_SET_PDEATHSIG``),
so a killed supervisor leaves no servers behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class Child:
    """One supervised child process.

    Args:
        name: short name used in messages (``model``, ``worker``, ``api``).
        argv: the command.
        log_path: where its stdout and stderr go; None inherits the terminal.
        env: the environment (default: this process's).
        cwd: the working folder (default: this process's).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start the child in its own session."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log is not None else None,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - children are started before any thread
        )

    def poll(self) -> int | None:
        """The exit code, or None while it runs (or before it started)."""
        return None if self.proc is None else self.proc.poll()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig: int, *, group: bool = False) -> None:
        """Send ``sig`` to the child (or its whole process group); a no-op once it exited."""
        if not self.running():
            return
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)

    def stop(self, steps: Sequence[tuple[int, float]] = ((signal.SIGTERM, 10.0),)) -> int | None:
        """Stop the child: send each signal in turn and wait up to its timeout; SIGKILL the group last.

        Returns:
            The exit code (negative for a signal), or None when it was never started.
        """
        if self.proc is None:
            return None
        for sig, wait_s in steps:
            if not self.running():
                break
            self.send(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait_s)
        if self.running():
            log.warning("%s did not stop in time; killing it", self.name)
            self.send(signal.SIGKILL, group=True)
            self.proc.wait(10)
        else:
            # Leftovers of a child that exited (e.g. pool processes) go with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's log file ('' when it logs to the terminal)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])
