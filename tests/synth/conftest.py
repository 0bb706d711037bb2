"""A real wiki (git + SQLite) and the fake model server, wired the way the composition root does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.fake_llm import FakeLLM
from ingest.service import intake_file
from store.db import make_engine, make_session_factory
from store.git_store import GitStore
from store.migrate import upgrade
from synth.client import Endpoint, ModelClient
from synth.deps import SynthDeps
from synth.runner import drain


@dataclass
class Wiki:
    deps: SynthDeps
    root: Path
    fake: FakeLLM

    def ingest(self, *paths: Path) -> list[str]:
        ids = []
        for p in paths:
            with self.deps.session_factory() as session, session.begin():
                r = intake_file(session, self.deps.store, p, root=None, max_bytes=10_000_000,
                                parser_timeout_s=60, parser_memory_mb=1024)
                assert r.status in ("new", "new_version", "known"), (p, r)
                ids.append(r.source_id)
        return ids

    def run(self) -> dict[str, int]:
        return drain(self.deps)


def make_wiki(tmp_path: Path, fake: FakeLLM, **deps_kw) -> Wiki:
    url = f"sqlite:///{tmp_path / 'lore.db'}"
    upgrade(url)
    engine = make_engine(url)
    store = GitStore(tmp_path / "wiki")
    store.init()
    client = ModelClient([Endpoint(fake.base_url, "fake-llm")], max_retries=2)
    deps = SynthDeps(make_session_factory(engine), store, client, catalog_debounce_s=0.0, **deps_kw)
    return Wiki(deps, tmp_path, fake)


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM(seed=1) as fake:
        yield fake


@pytest.fixture
def wiki(tmp_path, fake_llm) -> Wiki:
    return make_wiki(tmp_path, fake_llm)
