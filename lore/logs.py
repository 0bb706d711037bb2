"""Logging of Lore's processes: JSON lines (structlog) or plain text, on stderr, with the work's ids.

Every log call in every package is plain ``logging``; this module, run once per process by the
composition root, routes the standard library's records through structlog's formatter. The ids of the
work a line belongs to are context variables (``structlog.contextvars``) bound where the work starts:
``request_id`` by the API's middleware (:mod:`api.request_id`), ``job_id``, ``job_kind`` and
``source_id`` by ``synth.service.run_job``, ``source_id`` by the intake service. Each JSON line carries
them, so ``jq 'select(.source_id == "<sha>")'`` selects one ingest's lines.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import structlog


def _processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]


def configure_logging(level: str, fmt: str = "json", *, stream: TextIO | None = None) -> None:
    """Send every log record of this process to ``stream`` (stderr) as JSON lines or text.

    Args:
        level: the root level (``LORE_LOG_LEVEL``).
        fmt: ``json`` or ``text`` (``LORE_LOG_FORMAT``).
        stream: where lines go; default ``sys.stderr``.
    """
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        final = [structlog.processors.dict_tracebacks, renderer]
    else:
        final = [structlog.dev.ConsoleRenderer(colors=False)]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if fmt == "json":
        # stderr holds only JSON lines: warnings become log records, progress bars (model loading) go.
        logging.captureWarnings(True)
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    structlog.configure(
        processors=[*_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
