"""The embedded model, for real: llama.cpp's server with the reassembled Qwen2.5-Coder GGUF.

Slow (minutes on two CPU cores), and still part of `make test`: at least one test must prove the
write path works with a real model, not only with the fake server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from lore.llama_server import LlamaServer
from store.models import Claim, ModelCall, Source
from synth.lint_service import lint_wiki
from tests.synth.real_model import ALIAS, real_wiki, serve_embedded_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Iterator[LlamaServer]:
    yield from serve_embedded_model(tmp_path_factory.mktemp("llama"))


def test_two_postmortems_end_to_end_with_the_real_model(tmp_path, llama, shared_data):
    from synth.runner import drain

    wiki = real_wiki(tmp_path, llama, read_s=1200.0)
    deps, factory, store = wiki.deps, wiki.deps.session_factory, wiki.deps.store
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
    assert any(ALIAS in v for c in store.log() for v in c.trailers.get("Assisted-by", []))
