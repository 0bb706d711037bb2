"""The embedded model, for real: llama.cpp's server with the reassembled Qwen2.5-Coder GGUF.

Slow (minutes on two CPU cores), and still part of `make test`: at least one test must prove the
write path works with a real model, not only with the fake server.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from lore.config import DEFAULT_MODEL_FILE
from lore.llama_server import LlamaServer
from store.models import Claim, ModelCall, Source
from synth.client import Endpoint, ModelClient, Sampling, Timeouts
from synth.lint_service import lint_wiki
from tests.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

MODEL = Path(sys.prefix) / "share" / "lore" / DEFAULT_MODEL_FILE


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Iterator[LlamaServer]:
    if not MODEL.is_file():
        pytest.fail(f"embedded model missing at {MODEL}: run `make setup`")
    server = LlamaServer(MODEL, alias="qwen2.5-coder-1.5b-instruct", port=free_port(), context_tokens=8192,
                         log_path=tmp_path_factory.mktemp("llama") / "server.log")
    server.start(timeout_s=300)
    try:
        yield server
    finally:
        server.stop()


def test_two_postmortems_end_to_end_with_the_real_model(tmp_path, llama, shared_data):
    from lore.wiring import make_recorder
    from store.db import make_engine, make_session_factory
    from store.git_store import GitStore
    from store.migrate import upgrade
    from synth.deps import SynthDeps
    from synth.runner import drain
    from tests.synth.conftest import Wiki

    url = f"sqlite:///{tmp_path / 'lore.db'}"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    store = GitStore(tmp_path / "wiki")
    store.init()
    client = ModelClient(
        [Endpoint(llama.base_url, "qwen2.5-coder-1.5b-instruct", dialect="llamacpp")],
        context_tokens=8192,
        sampling=Sampling(temperature=0.0, max_tokens=1500),
        timeouts=Timeouts(connect_s=5.0, read_s=1200.0, total_s=2400.0),
        max_retries=1,
        recorder=make_recorder(factory),
    )
    deps = SynthDeps(factory, store, client, catalog_debounce_s=0.0, chunk_tokens=1200)
    wiki = Wiki(deps, tmp_path, None)  # type: ignore[arg-type]
    docs = [
        shared_data / "ops/dfds-postmortems/docs/PM2020-007 - Unhealthy nodes.md",
        shared_data / "ops/dfds-postmortems/docs/PM2020-001 - Inotify file watches exhaustion.md",
    ]
    ids = wiki.ingest(*docs)
    drain(deps)
    with factory() as s:
        statuses = {s.get(Source, i).status: s.get(Source, i).error for i in ids}
        assert set(statuses) == {"done"}, statuses
        assert s.scalars(select(Claim)).first() is not None
        calls = s.scalars(select(ModelCall)).all()
        assert calls
        assert all(c.endpoint.startswith(llama.base_url.rsplit("/v1", 1)[0]) for c in calls)
        errors = [f for f in lint_wiki(s, store) if f.severity == "error"]
    assert errors == []
    assert any("qwen2.5-coder-1.5b-instruct" in v for c in store.log() for v in c.trailers.get("Assisted-by", []))
