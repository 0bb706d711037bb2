"""Fixtures of the intake tests: a real SQLite ledger, a real git store and an ingest folder."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from ingest.service import intake_bytes, intake_file
from store.db import make_engine, make_session_factory
from store.git_store import GitStore
from store.models import Base

LIMITS = {"max_bytes": 50 * 1024 * 1024, "parser_timeout_s": 30.0, "parser_memory_mb": 1024}


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'lore.db'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with factory() as s:
        yield s
    engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    git = GitStore(tmp_path / "wiki", refresh_worktree=False)
    git.init()
    return git


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "ingest"
    folder.mkdir()
    return folder


@pytest.fixture
def intake(session: Session, store: GitStore, inbox: Path):
    """``intake(path, **overrides)``: intake_file with the test's session, store and inbox as root."""

    def run(path: Path, **overrides):
        return intake_file(session, store, path, root=inbox, **{**LIMITS, **overrides})

    return run


@pytest.fixture
def upload(session: Session, store: GitStore):
    """``upload(data, origin, **overrides)``: intake_bytes with the test's session and store."""
    return partial(lambda data, origin, **kw: intake_bytes(session, store, data, origin, **{**LIMITS, **kw}))
