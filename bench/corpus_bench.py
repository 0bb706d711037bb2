"""``lore bench corpus``: build a wiki from a whole document set, then lint it.

Every document under the set's folder (recursively; by default ``../shared/data/ops``: the DFDS
postmortems, the Prometheus and MoJ runbooks and the MoJ ADRs) goes through the real intake service into
a fresh git repository and SQLite ledger in a temporary folder; in-process workers drain every job
against the fake model server (a test double: extraction quotes real sentences of each document), and
``synth.lint_service.lint_wiki`` checks the result. The report says what became of each document (done,
failed with its reason, refused at intake, or a byte-identical duplicate of another) and what the lint
found, by severity and kind.

The data set's provenance files are not documents and are skipped: ``LICENSE``, ``ORIGIN.txt`` and the
``UPSTREAM_*`` copies of the upstream repository's README and template.
"""

from __future__ import annotations

import fnmatch
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.fake_llm import FakeLLM
from bench.ingest_bench import _deps, _run_workers
from ingest.service import intake_file
from store.db import read_only
from store.models import Job, Page, Source
from synth.deps import SynthDeps
from synth.lint_service import lint_wiki, summarise

#: Provenance files the shared data set adds beside the documents.
NOT_DOCUMENTS = ("LICENSE", "LICENSE.*", "ORIGIN.txt", "UPSTREAM_*", ".*")
EXAMPLES = 5


def corpus_files(root: Path, limit: int | None = None) -> list[Path]:
    """Every document under ``root`` (recursively, sorted by relative path), at most ``limit``.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    files = sorted(
        (p for p in root.rglob("*") if p.is_file() and not any(fnmatch.fnmatchcase(p.name, g) for g in NOT_DOCUMENTS)),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    return files if limit is None else files[:limit]


def _grouped(rows: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """``(reason, name)`` pairs as one entry per reason: count and a few names, most frequent first."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for reason, name in rows:
        by_reason[reason].append(name)
    return [
        {"reason": reason, "count": len(names), "examples": sorted(names)[:EXAMPLES]}
        for reason, names in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]


def _intake_all(deps: SynthDeps, root: Path, files: Sequence[Path]) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    refused: list[tuple[str, str]] = []
    duplicates: list[str] = []
    for path in files:
        name = path.relative_to(root).as_posix()
        with deps.session_factory() as session, session.begin():
            r = intake_file(session, deps.store, path, root=root, max_bytes=50_000_000, parser_timeout_s=60,
                            parser_memory_mb=1024)
        statuses[r.status] += 1
        if r.status == "refused":  # no source row; intake failures ("failed") are sources and counted below
            refused.append((r.reason or "(no reason given)", name))
        elif r.status == "known":
            duplicates.append(f"{name}: {r.reason or 'same bytes as a source already taken in'}")
    return {"intake": dict(statuses), "refused": _grouped(refused), "duplicates": duplicates}


def _outcomes(deps: SynthDeps) -> dict[str, Any]:
    with deps.session_factory() as s:
        sources = s.execute(select(Source.status, Source.error, Source.origin)).all()
        jobs = dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        dead = s.execute(select(Job.kind, Job.last_error).where(Job.state == "dead")).all()
        pages = dict(s.execute(select(Page.kind, func.count()).where(Page.blob_id.is_not(None))
                               .group_by(Page.kind)).all())
    by_status = Counter(status for status, _, _ in sources)
    failed = [(error or "(no reason recorded)", origin) for status, error, origin in sources if status == "failed"]
    return {
        "sources": len(sources),
        "done": by_status.get("done", 0),
        "failed": by_status.get("failed", 0),
        "failed_reasons": _grouped(failed),
        "unfinished": {k: v for k, v in by_status.items() if k not in ("done", "failed")},
        "jobs": {k: int(v) for k, v in jobs.items()},
        "dead_jobs": _grouped([((err or "").splitlines()[0] if err else "(no error)", kind) for kind, err in dead]),
        "pages": {k: int(v) for k, v in pages.items()},
    }


def run_corpus_bench(root: Path, *, limit: int | None = None, workers: int = 1, min_claims: int = 2,
                     dispute_days: int = 30, seed: int = 5) -> dict[str, Any]:
    """Build a wiki from every document under ``root`` with the fake model server, then lint it.

    Args:
        root: the document set's folder.
        limit: take only the first ``limit`` documents (sorted by relative path).
        workers: in-process worker threads draining the jobs.
        min_claims, dispute_days: the lint's thresholds (as ``lore lint``).
        seed: the fake model server's seed.

    Returns:
        documents, intake outcomes, done / failed (reasons grouped), job states, pages, wall seconds of
        the build and of the lint, and the lint's errors, warnings and counts by kind (plus the error
        findings themselves, at most 50).
    """
    files = corpus_files(root, limit)
    with tempfile.TemporaryDirectory(prefix="lore-bench-corpus-") as tmp, FakeLLM(seed=seed) as fake:
        deps = _deps(Path(tmp), fake)
        start = time.perf_counter()
        intake = _intake_all(deps, root, files)
        _run_workers(deps, workers)
        build_s = time.perf_counter() - start
        outcomes = _outcomes(deps)
        start = time.perf_counter()
        with Session(read_only(deps.session_factory.kw["bind"])) as session:
            findings = lint_wiki(session, deps.store, min_claims=min_claims, dispute_days=dispute_days)
        lint_s = time.perf_counter() - start
        model_calls = int(fake.stats()["requests"])
    report = summarise(findings)
    return {
        "set": str(root),
        "documents": len(files),
        **intake,
        **outcomes,
        "model_calls": model_calls,
        "wall_seconds": round(build_s, 2),
        "lint_seconds": round(lint_s, 2),
        "lint": {
            "errors": report["errors"],
            "warnings": report["warnings"],
            "by_kind": report["by_kind"],
            "error_findings": [f.__dict__ for f in findings if f.severity == "error"][:50],
        },
    }
