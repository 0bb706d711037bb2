"""The ingest folder's watcher as ``lore up`` wires it: renames move a document, deletes may retract it.

Real SQLite, real git, the fake model server; jobs are run in this process (``synth.runner.drain``).
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from sqlalchemy import select

from bench.fake_llm import FakeLLM
from lore.config import load_settings
from lore.runtime import make_watcher
from lore.wiring import Wiring, migrate
from store.models import Claim, Source
from synth.runner import drain

DOC = "# Ledger\n\nThe Ledger Service keeps account balances in PostgreSQL.\n"


@pytest.fixture
def fake():
    with FakeLLM(seed=1) as server:
        yield server


def _wiring(tmp_path, monkeypatch, fake, *, retract_on_delete: bool) -> Wiring:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("LORE_")]:
        monkeypatch.delenv(key)
    settings = load_settings(
        paths={"data_dir": tmp_path / "data", "ingest_dir": tmp_path / "inbox"},
        llm={"base_url": fake.base_url},
        ingest={"settle_s": 0.0, "retract_on_delete": retract_on_delete},
        worker={"catalog_debounce_s": 0.0},
    )
    migrate(settings)
    return Wiring(settings)


def _run(wiring: Wiring) -> None:
    drain(replace(wiring.synth_deps(), embedder=None, search=None))


def _sources(wiring: Wiring) -> list[tuple[str, str]]:
    with wiring.session_factory() as s:
        return [(x.origin, x.status) for x in s.scalars(select(Source).order_by(Source.created_at))]


def test_a_deleted_file_retracts_its_document_when_asked_to(tmp_path, monkeypatch, fake):
    wiring = _wiring(tmp_path, monkeypatch, fake, retract_on_delete=True)
    inbox = tmp_path / "inbox"
    watcher = make_watcher(wiring)
    (inbox / "keep.md").write_text(DOC.replace("PostgreSQL", "MySQL").replace("Ledger", "Billing"))
    (inbox / "ledger.md").write_text(DOC)
    watcher.scan_once()
    _run(wiring)
    assert _sources(wiring) == [("keep.md", "done"), ("ledger.md", "done")]
    page = wiring.store.read("wiki/services/ledger-service.md")
    assert page.content is not None
    assert b"PostgreSQL" in page.content

    (inbox / "ledger.md").rename(inbox / "ledger-storage.md")  # a rename: nothing is retracted
    watcher.scan_once()
    _run(wiring)
    assert _sources(wiring) == [("keep.md", "done"), ("ledger-storage.md", "done")]

    (inbox / "ledger-storage.md").unlink()
    watcher.scan_once()
    _run(wiring)
    assert _sources(wiring) == [("keep.md", "done"), ("ledger-storage.md", "retracted")]
    assert wiring.store.read("wiki/services/ledger-service.md").content is None
    with wiring.session_factory() as s:
        assert {c.status for c in s.scalars(select(Claim).join(Source).where(Source.origin == "keep.md"))} == {
            "active"
        }
    wiring.close()


def test_a_deleted_file_is_kept_by_default(tmp_path, monkeypatch, fake):
    wiring = _wiring(tmp_path, monkeypatch, fake, retract_on_delete=False)
    inbox = tmp_path / "inbox"
    watcher = make_watcher(wiring)
    (inbox / "ledger.md").write_text(DOC)
    watcher.scan_once()
    _run(wiring)
    (inbox / "ledger.md").unlink()
    watcher.scan_once()
    _run(wiring)
    assert _sources(wiring) == [("ledger.md", "done")]
    assert wiring.store.read("wiki/services/ledger-service.md").content is not None
    wiring.close()
