"""The embedded model for the slow real-model tests: its llama.cpp server and a wiki wired to it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lore.config import DEFAULT_MODEL_FILE
from lore.llama_server import LlamaServer
from store.db import make_engine, make_session_factory
from store.git_store import GitStore
from store.migrate import upgrade
from synth.client import Endpoint, ModelClient, Sampling, Timeouts
from synth.deps import SynthDeps
from tests.services import free_port
from tests.synth.conftest import Wiki

MODEL = Path(sys.prefix) / "share" / "lore" / DEFAULT_MODEL_FILE
ALIAS = "qwen2.5-coder-1.5b-instruct"


def serve_embedded_model(log_dir: Path) -> Iterator[LlamaServer]:
    """Start llama.cpp's server on the reassembled GGUF (fail, not skip, when it is missing)."""
    if not MODEL.is_file():
        pytest.fail(f"embedded model missing at {MODEL}: run `make setup`")
    server = LlamaServer(MODEL, alias=ALIAS, port=free_port(), context_tokens=8192,
                         log_path=log_dir / "server.log")
    server.start(timeout_s=300)
    try:
        yield server
    finally:
        server.stop()


def real_wiki(tmp_path: Path, llama: LlamaServer, *, read_s: float, extract_cache: dict | None = None) -> Wiki:
    """A fresh git + SQLite wiki whose model client talks to ``llama`` and records every call."""
    from lore.wiring import make_recorder

    url = f"sqlite:///{tmp_path / 'lore.db'}"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    store = GitStore(tmp_path / "wiki")
    store.init()
    client = ModelClient(
        [Endpoint(llama.base_url, ALIAS, dialect="llamacpp")],
        context_tokens=8192,
        sampling=Sampling(temperature=0.0, max_tokens=1500),
        timeouts=Timeouts(connect_s=5.0, read_s=read_s, total_s=2 * read_s),
        max_retries=1,
        recorder=make_recorder(factory),
    )
    if extract_cache is not None:  # extraction answers shared between runs (cached by prompt hash)
        from bench.eval_conflicts import CachedClient

        client = CachedClient(client, extract_cache)  # type: ignore[assignment]
    deps = SynthDeps(factory, store, client, catalog_debounce_s=0.0, chunk_tokens=1200)
    return Wiki(deps, tmp_path, None)  # type: ignore[arg-type]
