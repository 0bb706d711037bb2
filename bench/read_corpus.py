"""A generated wiki for the read benchmark: pages in git, ledger rows, and indexed raw source chunks.

Generation is deterministic (seeded) and fast where it can be: pages are rendered by
``wiki.entity_page`` and written by the git store in a few large commits; ledger rows are bulk
inserted. Only the raw source chunks are embedded (by the real all-MiniLM-L6-v2), since the ``/query``
tier-3 path and the baseline search them. Each chunk is a short passage (under the index's window size,
so one vector per chunk) built from templates that mention generated services, teams and figures; the
chunks draw from a pool of ``distinct`` passages, each embedded once (:class:`MemoEmbedder`), because
embedding 50,000 distinct passages takes far too long on a small shared CPU. Every chunk still has its
own row, vector and full-text entry, so the search work per query is that of the full count.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from search.index import ChunkInput, SearchIndex
from store.db import make_engine, make_session_factory
from store.git_store import ABSENT, GitStore
from store.models import Base, Claim, Entity, Page, Source
from wiki.entity_page import ClaimView, EntityView, render_entity_page

WORDS_A = tuple(
    "amber basalt cedar delta ember fjord granite harbor indigo juniper kestrel lumen maple nimbus onyx pebble "
    "quartz raven sierra tundra".split()
)
WORDS_B = tuple(
    "gateway ledger scheduler broker cache indexer billing auth search notifier router archive metrics payments "
    "catalog mailer uploader resolver tracker vault".split()
)
REGIONS = ("Frankfurt", "Dublin", "Oregon", "Virginia", "Tokyo", "Sydney", "Sao Paulo", "Mumbai")
TEMPLATES = (
    "The {svc} service in {region} retries failed calls {n} times before its circuit breaker opens.",
    "During incident {inc} the {svc} service returned errors for {m} minutes because its pool was exhausted.",
    "Backups of the {svc} database run nightly at {h}:00 UTC and are kept for {n} days in {region}.",
    "The {team} team owns the {svc} service and reviews its alerts every {day}.",
    "Deploys of the {svc} service need two approvals and roll out to {region} first.",
    "The {svc} service keeps at most {n} messages per tenant in its queue before rejecting new work.",
    "Latency of the {svc} service rose to {m} milliseconds after the {region} network change.",
    "The {svc} service rotates its signing keys every {n} days using the {team} vault runbook.",
)  # fmt: skip
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
CHUNKS_PER_SOURCE = 10


@dataclass
class Corpus:
    """Handles to a generated wiki."""

    root: Path
    db_url: str
    page_paths: list[str]
    questions: list[str]
    timings: dict[str, float]


def service_name(i: int) -> str:
    return f"{WORDS_A[i % 20].title()} {WORDS_B[(i // 20) % 20].title()} {i // 400 + 1}"


def passage(rng: random.Random, services: int) -> str:
    svc = service_name(rng.randrange(services))
    return rng.choice(TEMPLATES).format(
        svc=svc, region=rng.choice(REGIONS), n=rng.randrange(2, 90), m=rng.randrange(3, 500),
        inc=f"INC-{rng.randrange(1000, 9999)}", h=rng.randrange(0, 24), day=rng.choice(DAYS),
        team=f"{rng.choice(WORDS_A).title()} {rng.choice(('Platform', 'Data', 'Edge', 'Core'))}",
    )  # fmt: skip


def question(rng: random.Random, services: int) -> str:
    svc = service_name(rng.randrange(services))
    return rng.choice(
        (
            f"how many times does {svc} retry before the breaker opens",
            f"how long are backups of {svc} kept",
            f"why did {svc} return errors during the incident",
            f"who owns {svc}",
            f"how many messages per tenant does {svc} queue",
        )
    )


class MemoEmbedder:
    """Wraps an embedder and embeds each distinct text once (same name and width as the wrapped one)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._cache: dict[str, Any] = {}

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        new = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if new:
            for text, vec in zip(new, self.inner.embed(new), strict=True):
                self._cache[text] = vec
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self._cache[t] for t in texts])


def _log(msg: str) -> None:
    sys.stderr.write(f"[bench read] {msg}\n")
    sys.stderr.flush()


def generate(
    root: Path,
    *,
    pages: int,
    chunks: int,
    embedder: Any,
    distinct: int = 5000,
    seed: int = 7,
    commit_size: int = 2500,
) -> Corpus:
    """Write a wiki of ``pages`` entity pages and a ledger whose sources give ``chunks`` indexed chunks.

    Args:
        distinct: how many distinct passages the chunks are drawn from (each is embedded once).
    """
    rng = random.Random(seed)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    store = GitStore(root / "wiki", refresh_worktree=False)
    store.init()
    db_url = f"sqlite:///{root / 'lore.db'}"
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    n_sources = max(1, (chunks + CHUNKS_PER_SOURCE - 1) // CHUNKS_PER_SOURCE)
    services = max(1, min(pages, 8000))
    pool = [passage(rng, services) for _ in range(max(1, min(distinct, chunks)))]
    source_rows: list[dict[str, Any]] = []
    source_chunks: list[ChunkInput] = []
    for s in range(n_sources):
        count = min(CHUNKS_PER_SOURCE, chunks - s * CHUNKS_PER_SOURCE)
        texts = [pool[rng.randrange(len(pool))] for _ in range(count)]
        body = "\n\n".join(texts)
        sid = hashlib.sha256(f"{s}:{body}".encode()).hexdigest()
        source_rows.append({
            "id": sid, "slug": f"runbook-{s:05d}", "origin": f"runbook-{s:05d}.md", "origin_key": f"runbook-{s:05d}.md",
            "title": f"Runbook {s:05d}", "media_type": "text/markdown", "size": len(body), "raw_path": "",
            "text": body, "status": "done", "version": 1, "claims_rejected": 0,
        })  # fmt: skip
        source_chunks += [
            ChunkInput("source", sid, i, t, "", {"source_id": sid, "source_title": f"Runbook {s:05d}"})
            for i, t in enumerate(texts)
        ]
    entity_rows, claim_rows, page_rows, texts_by_path = [], [], [], {}
    for i in range(pages):
        name, slug = service_name(i), f"svc-{i:05d}"
        entity_rows.append({"id": i + 1, "name": name, "norm_name": name.casefold(), "type": "services", "slug": slug,
                            "description": "", "revision": 1, "rendered_revision": 1})  # fmt: skip
        views = []
        for c in range(3):
            src = source_rows[rng.randrange(n_sources)]
            text = passage(rng, services).replace(service_name(0), name)
            cid = hashlib.sha256(f"{i}:{c}".encode()).hexdigest()[:12]
            claim_rows.append({"id": cid, "entity_id": i + 1, "source_id": src["id"], "key": cid * 2, "text": text,
                               "quote": text, "status": "active", "judged": True})  # fmt: skip
            views.append(ClaimView(cid, text, text, src["id"], src["title"], f"sources/{src['slug']}"))
        view = EntityView(i + 1, name, "services", slug, (), 1, f"{name} is a generated service.", claims=views)
        path = f"wiki/services/{slug}.md"
        texts_by_path[path] = render_entity_page(view, None, "2024-05-01").text
        page_rows.append({"path": path, "kind": "entity", "entity_id": i + 1, "title": name, "version": 1})
    with factory.begin() as session:
        for table, rows in ((Source, source_rows), (Entity, entity_rows), (Claim, claim_rows), (Page, page_rows)):
            for start in range(0, len(rows), 2000):
                session.execute(insert(table), rows[start : start + 2000])
    timings["ledger_s"] = time.perf_counter() - t0
    _log(f"ledger: {n_sources} sources, {pages} entities and pages ({timings['ledger_s']:.1f} s)")
    t1 = time.perf_counter()
    paths = sorted(texts_by_path)
    for start in range(0, len(paths), commit_size):
        part = paths[start : start + commit_size]
        store.write({p: texts_by_path[p].encode() for p in part}, dict.fromkeys(part, ABSENT),
                    f"bench: pages {start}..{start + len(part) - 1}")  # fmt: skip
    timings["git_s"] = time.perf_counter() - t1
    _log(
        f"git: {len(paths)} pages in {(len(paths) + commit_size - 1) // commit_size} commits ({timings['git_s']:.1f} s)"
    )
    t2 = time.perf_counter()
    search = SearchIndex(engine, MemoEmbedder(embedder))
    search.ensure_index()
    for start in range(0, len(source_chunks), 1024):
        search.upsert(source_chunks[start : start + 1024])
        if (start // 1024) % 10 == 0:
            _log(f"embedded {min(start + 1024, len(source_chunks))}/{len(source_chunks)} chunks")
    timings["embed_s"] = time.perf_counter() - t2
    _log(f"index: {len(source_chunks)} source chunks ({timings['embed_s']:.1f} s)")
    engine.dispose()
    questions = [question(rng, services) for _ in range(500)]
    timings["distinct_passages"] = float(len(pool))
    return Corpus(root, db_url, paths, questions, timings)
