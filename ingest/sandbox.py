"""Run a parser in a child process with time and memory limits.

Parsers read hostile input: a PDF with a reference loop, a zip bomb, HTML nested a million deep. So
they never run in the caller. ``parse_in_sandbox`` starts a fresh interpreter (``python -I -B``: no
user site, no environment, no bytecode writes) with an empty environment, sends the bytes on stdin and
reads one JSON answer (``ingest.sandbox_child``). The child limits its own address space and CPU time
with ``setrlimit``; the parent enforces the wall-clock timeout and kills the child's whole process group
when it expires. Whatever happens in the child ends here as a ``ParsedDocument`` or a ``ParseFailed``
whose reason a person understands.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ingest.document import ParsedDocument
from ingest.errors import ParseFailed
from ingest.sniff import MEDIA_TYPES

_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from ingest.sandbox_child import main; main(sys.argv[2:])"


def parse_in_sandbox(data: bytes, media_type: str, *, timeout_s: float, memory_mb: int) -> ParsedDocument:
    """Parse ``data`` as ``media_type`` in a limited child process.

    Args:
        data: the raw document bytes.
        media_type: a sniffed media type (``ingest.sniff.MEDIA_TYPES``).
        timeout_s: wall-clock limit; the child also gets a CPU limit of about the same length.
        memory_mb: address-space limit of the child.

    Returns:
        The parsed document.

    Raises:
        ParseFailed: the document could not be parsed, or the parser hit a limit or crashed.
    """
    if not data:
        raise ParseFailed("file is empty")
    if media_type not in MEDIA_TYPES:
        raise ParseFailed(f"no parser for media type {media_type!r}")
    cpu_s = max(1, math.ceil(timeout_s)) + 1
    cmd = [sys.executable, "-I", "-B", "-c", _BOOT, _PROJECT_ROOT, media_type, str(memory_mb), str(cpu_s)]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
        env={"LC_ALL": "C.UTF-8"},
        cwd="/",
    )
    started = time.monotonic()
    try:
        out, err = proc.communicate(data, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise ParseFailed(f"parser ran out of time after {timeout_s:g} s") from None
    except BaseException:
        _kill(proc)
        raise
    elapsed = time.monotonic() - started
    return _answer(proc.returncode, out, err, timeout_s=timeout_s, memory_mb=memory_mb, elapsed=elapsed)


def _answer(
    returncode: int, out: bytes, err: bytes, *, timeout_s: float, memory_mb: int, elapsed: float
) -> ParsedDocument:
    memory_reason = f"parser exceeded its {memory_mb} MB memory limit"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode == signal.SIGXCPU or (-returncode == signal.SIGKILL and elapsed >= timeout_s * 0.9):
            raise ParseFailed(f"parser ran out of time after {timeout_s:g} s")
        raise ParseFailed(f"parser crashed ({name}), possibly at its {memory_mb} MB memory limit")
    try:
        answer = json.loads(out.decode("utf-8", "replace")) if out else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        tail = err.decode("utf-8", "replace")[-2000:]
        if "MemoryError" in tail:
            raise ParseFailed(memory_reason)
        last = tail.strip().splitlines()[-1][:300] if tail.strip() else f"exit status {returncode}"
        raise ParseFailed(f"parser failed without an answer: {last}")
    if answer.get("ok"):
        return ParsedDocument.from_json(answer["doc"])
    if answer.get("kind") == "memory":
        raise ParseFailed(memory_reason)
    raise ParseFailed(str(answer.get("reason") or "parser failed"))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child's process group and reap it (the pipes are drained so it cannot block)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=5)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        proc.kill()
        proc.wait(timeout=5)
