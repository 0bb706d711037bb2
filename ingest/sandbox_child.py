"""The parser child process: limits itself, reads a document on stdin, writes one JSON answer.

Started only by ``ingest.sandbox`` as ``python -I -B -c ... <media_type> <memory_mb> <cpu_s>``. It
sets its own resource limits before importing any parser, so everything the parser does is bounded:
address space (RLIMIT_AS), CPU seconds (RLIMIT_CPU; the kernel kills it on expiry), no file writes
(RLIMIT_FSIZE 0), no core dumps, no new processes. The answer is written to the original stdout; stray
output of libraries is diverted to stderr so it cannot corrupt the answer.

Answer: ``{"ok": true, "doc": {...}}`` or ``{"ok": false, "kind": "failed"|"memory", "reason": "..."}``.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import warnings
from collections.abc import Sequence

MB = 1024 * 1024


def limit(memory_mb: int, cpu_s: int) -> None:
    """Apply the child's resource limits (soft and hard, so they cannot be raised again)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * MB, memory_mb * MB))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    except (ValueError, OSError):  # not supported or not permitted here; the other limits still hold
        pass


def main(argv: Sequence[str]) -> None:
    """Entry point of the child (see the module docstring for the protocol)."""
    media_type, memory_mb, cpu_s = argv[0], int(argv[1]), int(argv[2])
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")  # hostile files can make parsers warn without end
    limit(memory_mb, cpu_s)
    answer = _run(media_type)
    if not answer["ok"] and answer["kind"] == "failed" and _near_memory_limit(memory_mb):
        # C libraries report a failed allocation in their own words ("unknown error", "out of memory");
        # when the address space peaked at the limit, that is what happened.
        answer = {"ok": False, "kind": "memory", "reason": str(answer["reason"])}
    payload = json.dumps(answer, ensure_ascii=False).encode("utf-8", "replace")
    view = memoryview(payload)
    while view:
        written = os.write(answer_fd, view[: 1 << 20])
        view = view[written:]
    os.close(answer_fd)


def _near_memory_limit(memory_mb: int) -> bool:
    """True when this process's peak address space came within 10% of its limit."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024 >= memory_mb * MB * 0.9
    except (OSError, ValueError):
        pass
    return False


def _run(media_type: str) -> dict[str, object]:
    label = media_type
    try:
        from ingest.errors import ParseFailed
        from ingest.parsers import LABELS, parse_document

        label = LABELS.get(media_type, media_type)
        data = sys.stdin.buffer.read()
        try:
            doc = parse_document(data, media_type)
        except ParseFailed as exc:
            return {"ok": False, "kind": "failed", "reason": exc.reason}
        del data
        return {"ok": True, "doc": doc.to_json()}
    except MemoryError:
        return {"ok": False, "kind": "memory", "reason": ""}
    except RecursionError:
        return {"ok": False, "kind": "failed", "reason": f"{label} is nested too deeply to read"}
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300]
        return {"ok": False, "kind": "failed", "reason": f"{label} could not be read: {type(exc).__name__}: {detail}"}
