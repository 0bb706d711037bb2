"""``lore bench read``: read throughput and latency of the API served by uvicorn on loopback.

1. Generate a wiki (``bench.read_corpus``): ``pages`` entity pages in git, their ledger rows, and
   ``chunks`` raw source chunks embedded into the search index.
2. Serve it in a child process (``python -m bench.read_bench serve``): the real app from
   ``api.app.create_app`` under uvicorn; and, in a second child, the baseline (``... baseline``): a
   plain embed-and-search endpoint that embeds the query with the same model and takes the top k of a
   brute-force cosine over the same chunk vectors held in one numpy matrix.
3. Drive each with ``clients`` concurrent HTTP clients (httpx, asyncio), bounded by a request count
   and a time limit, after a warm-up: ``GET /pages/{path}`` (JSON with claims and citations),
   ``GET /query?tier=3`` (raw source chunks: relevance gate, hybrid search, citations from the ledger)
   and the baseline's ``GET /search``, the last two alternating in ``ROUNDS`` blocks. Report requests
   per second and p50/p99 latency, and the ratio of the tier-3 query to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.read_corpus import Corpus, _log, generate

WARMUP = 16
ROUNDS = 4


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


@dataclass
class Sample:
    """Raw figures of one measured block."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0


async def _load(base: str, urls: list[str], clients: int, requests: int, duration_s: float, offset: int = 0) -> Sample:
    """Send up to ``requests`` GETs (cycling through ``urls`` from ``offset``) from ``clients`` clients."""
    sample = Sample()
    counter = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120.0, limits=limits) as client:
        for url in urls[:WARMUP]:
            await client.get(url)
        deadline = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal counter
            while time.perf_counter() < deadline and counter < requests:
                n = counter + offset
                counter += 1
                t = time.perf_counter()
                try:
                    ok = (await client.get(urls[n % len(urls)])).status_code == 200
                except httpx.HTTPError:
                    ok = False
                sample.latencies.append(time.perf_counter() - t)
                sample.errors += not ok

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        sample.seconds = time.perf_counter() - start
    return sample


def summarize(samples: list[Sample]) -> dict[str, Any]:
    """Requests, errors, requests per second and p50/p99 latency over several blocks."""
    latencies = [x for s in samples for x in s.latencies]
    seconds = sum(s.seconds for s in samples)
    return {
        "requests": len(latencies),
        "errors": sum(s.errors for s in samples),
        "seconds": round(seconds, 3),
        "rps": round(len(latencies) / seconds, 2) if seconds else 0.0,
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
    }


def _start(mode: str, root: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.read_bench", mode, "--root", str(root), "--port", str(port)]
    return subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_read_bench(
    *,
    pages: int = 10_000,
    chunks: int = 50_000,
    clients: int = 32,
    requests: int = 2000,
    duration_s: float = 60.0,
    k: int = 5,
    distinct: int = 5000,
    seed: int = 7,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Generate (or reuse, in ``workdir``), serve and measure; returns the figures as one JSON-ready dict."""
    from store.embedding import SentenceTransformerEmbedder

    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lore-bench-read-"))
    root.mkdir(parents=True, exist_ok=True)
    meta_file = root / "bench.json"
    wanted = {"pages": pages, "chunks": chunks, "distinct": distinct, "seed": seed}
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else None
    if meta is not None and meta["params"] == wanted:
        _log(f"reusing the wiki generated in {root}")
        corpus = Corpus(root, meta["db_url"], meta["page_paths"], meta["questions"], meta["timings"])
    else:
        if meta is not None or any(root.iterdir()):
            raise ValueError(f"{root} holds something else; give an empty or a matching bench folder")
        embedder = SentenceTransformerEmbedder()
        corpus = generate(root, pages=pages, chunks=chunks, embedder=embedder, distinct=distinct, seed=seed)
        del embedder
        meta_file.write_text(
            json.dumps(
                {
                    "params": wanted,
                    "db_url": corpus.db_url,
                    "page_paths": corpus.page_paths,
                    "questions": corpus.questions,
                    "timings": corpus.timings,
                }
            )
        )
    rng = random.Random(seed)
    page_urls = [f"/pages/{p}" for p in rng.sample(corpus.page_paths, min(len(corpus.page_paths), 2000))]
    query_urls = [str(httpx.URL("/query", params={"q": q, "k": k, "tier": 3})) for q in corpus.questions]
    base_urls = [str(httpx.URL("/search", params={"q": q, "k": k})) for q in corpus.questions]
    api_port, base_port = _free_port(), _free_port()
    api_base, plain_base = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{base_port}"
    results: dict[str, Any] = {}
    api = _start("serve", root, api_port)
    baseline = _start("baseline", root, base_port)
    try:
        _wait_ready(api, f"{api_base}/health/ready")
        _wait_ready(baseline, f"{plain_base}/ready")
        _log("servers ready; measuring GET /pages/{path}")
        results["pages"] = summarize([asyncio.run(_load(api_base, page_urls, clients, requests, duration_s))])
        # The tier-3 query and the baseline alternate in blocks, so a change in the machine's load
        # (the CPU is shared) weighs on both alike.
        blocks: dict[str, list[Sample]] = {"query_tier3": [], "baseline": []}
        per_block, block_s = max(1, requests // ROUNDS), duration_s / ROUNDS
        for r in range(ROUNDS):
            _log(f"round {r + 1}/{ROUNDS}: GET /query (tier 3), then plain embed-and-search")
            blocks["query_tier3"].append(asyncio.run(_load(api_base, query_urls, clients, per_block, block_s, r)))
            blocks["baseline"].append(asyncio.run(_load(plain_base, base_urls, clients, per_block, block_s, r)))
        results.update({name: summarize(samples) for name, samples in blocks.items()})
        sample = httpx.get(f"{api_base}{query_urls[0]}", timeout=60).json()
        results["query_sample"] = {"q": sample["query"], "tier": sample["tier"], "hits": len(sample["hits"])}
    finally:
        _stop(api)
        _stop(baseline)
    q, b = results["query_tier3"], results["baseline"]
    report = {
        "pages": pages,
        "chunks": chunks,
        "clients": clients,
        "requests_per_scenario": requests,
        "duration_limit_s": duration_s,
        "k": k,
        "results": results,
        "ratio_query_to_baseline": {
            "p50": round(q["p50_ms"] / b["p50_ms"], 2) if b["p50_ms"] else None,
            "p99": round(q["p99_ms"] / b["p99_ms"], 2) if b["p99_ms"] else None,
            "rps": round(q["rps"] / b["rps"], 2) if b["rps"] else None,
        },
        "distinct_passages": int(corpus.timings["distinct_passages"]),
        "generation_s": {k2: round(v, 1) for k2, v in corpus.timings.items() if k2.endswith("_s")},
    }
    if workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    return report


# --- the two servers (child processes) -----------------------------------------------------------


def _serve_api(root: Path, port: int) -> None:
    import uvicorn

    from api.app import create_app
    from api.deps import ApiDeps
    from store.db import make_engine, make_session_factory
    from store.embedding import SentenceTransformerEmbedder
    from store.git_store import GitStore
    from store.search import SearchIndex

    engine = make_engine(f"sqlite:///{root / 'lore.db'}")
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    search = SearchIndex(engine, embedder)  # type: ignore[arg-type]  # dim is a read-only property
    deps = ApiDeps(
        session_factory=make_session_factory(engine),
        store=GitStore(root / "wiki", refresh_worktree=False),
        search=search,
        embedder=embedder,
    )
    uvicorn.run(create_app(deps), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _serve_baseline(root: Path, port: int) -> None:
    import numpy as np
    import uvicorn
    from sqlalchemy import select
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from store.db import make_engine
    from store.embedding import SentenceTransformerEmbedder, normalise
    from store.models import Chunk
    from store.search_dense import unpack

    embedder = SentenceTransformerEmbedder()
    engine = make_engine(f"sqlite:///{root / 'lore.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            select(Chunk.ref, Chunk.ordinal, Chunk.text, Chunk.embedding).where(Chunk.kind == "source")
        ).all()
        conn.rollback()
    matrix = np.vstack([unpack(r[3] or b"", embedder.dim)[0] for r in rows]).astype(np.float32)
    refs = [(r[0], int(r[1]), r[2]) for r in rows]

    def search(q: str, k: int) -> list[dict[str, Any]]:
        vec = normalise(embedder.embed([q]))[0]
        scores = matrix @ vec
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        return [{"ref": refs[i][0], "ordinal": refs[i][1], "text": refs[i][2], "score": float(scores[i])} for i in best]

    async def endpoint(request: Request) -> JSONResponse:
        q = request.query_params.get("q", "")
        k = int(request.query_params.get("k", "5"))
        return JSONResponse({"query": q, "hits": await run_in_threadpool(search, q, k)})

    async def ready(request: Request) -> JSONResponse:
        return JSONResponse({"chunks": len(refs)})

    app = Starlette(routes=[Route("/search", endpoint), Route("/ready", ready)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.read_bench")
    parser.add_argument("mode", choices=("serve", "baseline"))
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    (_serve_api if args.mode == "serve" else _serve_baseline)(args.root, args.port)


if __name__ == "__main__":
    main()
