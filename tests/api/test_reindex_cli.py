"""``lore reindex`` rebuilds the search index from the repository and the ledger (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from store.models import Chunk
from tests.api.wiki_builder import build_wiki

ROOT = Path(__file__).resolve().parents[2]


def lore(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
    env.update(LORE_PATHS__DATA_DIR=str(data_dir), LORE_ENV="test", HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "lore.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_lore_reindex(tmp_path: Path) -> None:
    migrated = lore(tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    fx = build_wiki(tmp_path)  # the migrated database and data/wiki, as the settings name them
    first = lore(tmp_path, "reindex", "--json")
    assert first.returncode == 0, first.stderr
    stats = json.loads(first.stdout)
    assert stats["pages"] == 7
    assert stats["sources"] == 4
    assert stats["claims"] == 5  # active claims of entity pages (the two disputed ones are not indexed)
    assert stats["commit"] == fx.store.head()
    with fx.session_factory() as session:
        total = session.scalar(select(func.count()).select_from(Chunk))
        kinds = dict(session.execute(select(Chunk.kind, func.count()).group_by(Chunk.kind)).all())
    assert total == stats["written"]
    assert kinds == {"section": stats["sections"], "claim": 5, "source": stats["source_chunks"]}
    again = lore(tmp_path, "reindex", "--json")
    assert json.loads(again.stdout)["written"] == 0
