"""`lore bench ingest` and `lore bench contention`: the write path's cost and coalescing, measured.

Both run the real flows (git store, SQLite ledger, model client over HTTP) against the fake model
server with a per-call latency, so the figures are about Lore's own work and its number of model
calls, not about a model's speed.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.fake_llm import FakeLLM
from ingest.service import intake_bytes
from store.db import make_engine, make_session_factory
from store.git_store import GitStore
from store.migrate import upgrade
from store.models import Claim, Entity, Job, ModelCall, Page, Source
from synth.client import CallRecord, Endpoint, ModelClient
from synth.deps import SynthDeps
from synth.runner import drain

# A published measurement of LightRAG indexing one 2,412-token document.
LIGHTRAG = {"calls": 6, "prompt_tokens": 21_485, "completion_tokens": 3_244, "source_tokens": 2_412}


def _recorder(factory):  # type: ignore[no-untyped-def]
    lock = threading.Lock()

    def record(rec: CallRecord) -> None:
        with lock, factory() as s, s.begin():
            s.add(ModelCall(stage=rec.stage, model=rec.model, endpoint=rec.endpoint, attempt=rec.attempt,
                            prompt_tokens=rec.prompt_tokens, completion_tokens=rec.completion_tokens,
                            reasoning_tokens=rec.reasoning_tokens, cached_tokens=rec.cached_tokens,
                            latency_ms=rec.latency_ms, outcome=rec.outcome, job_id=rec.job_id,
                            source_id=rec.source_id))

    return record


def _deps(root: Path, fake: FakeLLM) -> SynthDeps:
    url = f"sqlite:///{root / 'lore.db'}"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    store = GitStore(root / "wiki")
    store.init()
    client = ModelClient([Endpoint(fake.base_url, "fake-llm")], recorder=_recorder(factory))
    return SynthDeps(factory, store, client, catalog_debounce_s=0.5)


def _intake(deps: SynthDeps, docs: Sequence[tuple[str, bytes]]) -> list[str]:
    ids = []
    for name, data in docs:
        with deps.session_factory() as s, s.begin():
            r = intake_bytes(s, deps.store, data, name, max_bytes=50_000_000, parser_timeout_s=60,
                             parser_memory_mb=1024)
            if r.source_id:
                ids.append(r.source_id)
    return ids


def _run_workers(deps: SynthDeps, workers: int) -> None:
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            drain(deps)
        except BaseException as exc:  # surfaced after join
            errors.append(exc)

    threads = [threading.Thread(target=loop, name=f"bench-worker-{i}") for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drain(deps)  # whatever became due after the last loop ended
    if errors:
        raise errors[0]


def _stage_stats(deps: SynthDeps) -> dict[str, dict[str, float]]:
    with deps.session_factory() as s:
        rows = s.execute(
            select(ModelCall.stage, func.count(), func.sum(ModelCall.prompt_tokens),
                   func.sum(ModelCall.completion_tokens), func.sum(ModelCall.cached_tokens))
            .group_by(ModelCall.stage)
        ).all()
    return {
        stage: {"calls": n, "prompt_tokens": int(p or 0), "completion_tokens": int(c or 0), "cached": int(k or 0)}
        for stage, n, p, c, k in rows
    }


def run_ingest_bench(docs_dir: Path, *, limit: int = 20, latency_ms: float = 200.0, concurrency: int = 4,
                     workers: int = 1) -> dict[str, Any]:
    """Ingest ``limit`` documents from ``docs_dir`` and report throughput and model cost per source."""
    files = sorted(p for p in docs_dir.iterdir() if p.is_file() and p.suffix in (".md", ".txt"))[:limit]
    docs = [(p.name, p.read_bytes()) for p in files]
    with tempfile.TemporaryDirectory(prefix="lore-bench-ingest-") as tmp, \
            FakeLLM(latency_ms=latency_ms, concurrency=concurrency, seed=7) as fake:
        deps = _deps(Path(tmp), fake)
        start = time.perf_counter()
        ids = _intake(deps, docs)
        _run_workers(deps, workers)
        seconds = time.perf_counter() - start
        stages = _stage_stats(deps)
        with deps.session_factory() as s:
            done = s.scalar(select(func.count()).select_from(Source).where(Source.status == "done")) or 0
            source_chars = sum(len(t or "") for t in s.scalars(select(Source.text)))
            pages = s.scalar(select(func.count()).select_from(Page)) or 0
            renders = s.scalar(select(func.sum(Page.renders))) or 0
    n = max(1, len(ids))
    calls = sum(v["calls"] for v in stages.values())
    prompt = sum(v["prompt_tokens"] for v in stages.values())
    completion = sum(v["completion_tokens"] for v in stages.values())
    cached = sum(v["cached"] for v in stages.values())
    source_ktokens = max(1e-9, source_chars / 4 / 1000)
    lr_k = LIGHTRAG["source_tokens"] / 1000
    return {
        "sources": len(ids),
        "done": int(done),
        "workers": workers,
        "latency_ms": latency_ms,
        "seconds": round(seconds, 2),
        "sources_per_min": round(len(ids) / seconds * 60, 2),
        "model_calls_per_source": round(calls / n, 2),
        "prompt_tokens_per_source": round(prompt / n, 1),
        "completion_tokens_per_source": round(completion / n, 1),
        "pages_touched_per_source": round(renders / n, 2),
        "pages": int(pages),
        "prefix_shared_fraction": round(cached / prompt, 3) if prompt else 0.0,
        "per_1k_source_tokens": {
            "lore": {"calls": round(calls / source_ktokens, 2), "prompt_tokens": round(prompt / source_ktokens),
                     "completion_tokens": round(completion / source_ktokens)},
            "lightrag_published": {"calls": round(LIGHTRAG["calls"] / lr_k, 2),
                                   "prompt_tokens": round(LIGHTRAG["prompt_tokens"] / lr_k),
                                   "completion_tokens": round(LIGHTRAG["completion_tokens"] / lr_k)},
        },
        "stages": stages,
    }


def _hot_docs(n: int, entity: str) -> list[tuple[str, bytes]]:
    docs = []
    for i in range(n):
        text = (
            f"# Change {i:03d} to {entity}\n\n"
            f"{entity} gained configuration item number {i:03d} during rollout wave {i:03d}.\n"
            f"The operators of {entity} recorded checksum {i * 7919 % 100000:05d} for wave {i:03d}.\n"
        )
        docs.append((f"hot-{i:03d}.md", text.encode()))
    return docs


def run_contention_bench(*, sources: int = 64, workers: int = 8, latency_ms: float = 50.0,
                         entity: str = "Kubernetes") -> dict[str, Any]:
    """Many sources adding claims to one entity, processed by concurrent workers."""
    with tempfile.TemporaryDirectory(prefix="lore-bench-contention-") as tmp, \
            FakeLLM(latency_ms=latency_ms, concurrency=workers, seed=11) as fake:
        deps = _deps(Path(tmp), fake)
        start = time.perf_counter()
        ids = _intake(deps, _hot_docs(sources, entity))
        _run_workers(deps, workers)
        seconds = time.perf_counter() - start
        with deps.session_factory() as s:
            hot = s.scalars(select(Entity).where(Entity.name == entity)).first()
            if hot is None:
                raise RuntimeError(f"no entity named {entity!r} was extracted")
            page = s.scalar(select(Page).where(Page.path == hot.page_path))
            claim_ids = set(s.scalars(select(Claim.id).where(Claim.entity_id == hot.id,
                                                             Claim.status.in_(("active", "duplicate", "disputed")))))
            compose_calls = s.scalar(
                select(func.count()).select_from(ModelCall).join(Job, Job.id == ModelCall.job_id)
                .where(ModelCall.stage == "compose", Job.entity_id == hot.id)
            ) or 0
            done = s.scalar(select(func.count()).select_from(Source).where(Source.status == "done")) or 0
        text = (deps.store.read(hot.page_path).content or b"").decode()
        lost = sorted(c for c in claim_ids if f"[^{c}]" not in text)
        renders = page.renders if page is not None else 0
    return {
        "sources": len(ids),
        "done": int(done),
        "workers": workers,
        "seconds": round(seconds, 2),
        "hot_page_renders": int(renders),
        "compose_calls": int(compose_calls),
        "hot_claims": len(claim_ids),
        "lost_claims": len(lost),
        "coalescing_factor": round(len(ids) / renders, 2) if renders else None,
    }
