"""API keys: `lore keys create|list|revoke`, last-used times, and bootstrap keys leaving the configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from api.auth import hash_secret, lookup_key
from api.keys import KeyExists, NoSuchKey, create_key, list_keys, revoke_key
from store.db import unit_of_work
from store.models import ApiKey
from tests.api.conftest import INGEST_KEY, KEYS, READ_KEY
from tests.api.wiki_builder import WikiFixture

ROOT = Path(__file__).resolve().parents[2]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_created_key_is_hashed_scoped_and_revocable(
    make_client: Callable[..., TestClient], fresh_wiki: WikiFixture
) -> None:
    with unit_of_work(fresh_wiki.session_factory) as session:
        secret = create_key(session, "curator", ["curate", "read"])
    client = make_client(fresh_wiki, open_reads=False)
    with fresh_wiki.session_factory() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.name == "curator"))
        assert row is not None
        assert row.key_hash == hash_secret(secret)
        assert secret not in (row.key_hash, row.scopes)
        assert (row.scopes, row.origin, row.last_used_at) == ("curate read", "cli", None)
    assert client.get("/pages", headers=bearer(secret)).status_code == 200
    with fresh_wiki.session_factory() as session:
        used = session.scalar(select(ApiKey.last_used_at).where(ApiKey.name == "curator"))
    assert used is not None
    # a curate key is not an ingest key
    assert client.post("/sources", headers=bearer(secret), files={"file": ("a.md", b"# a\n")}).status_code == 403

    with unit_of_work(fresh_wiki.session_factory) as session:
        assert revoke_key(session, "curator") is True
        assert revoke_key(session, "curator") is False
    refused = client.get("/pages", headers=bearer(secret))
    assert refused.status_code == 401
    assert refused.json()["error"] == "Unauthorized"
    # a restart (bootstrap keys installed again) does not bring a CLI key back
    client2 = make_client(fresh_wiki, open_reads=False)
    assert client2.get("/pages", headers=bearer(secret)).status_code == 401


def test_key_names_and_scopes_are_checked(fresh_wiki: WikiFixture) -> None:
    with unit_of_work(fresh_wiki.session_factory) as session:
        create_key(session, "bot", ["read"])
    with unit_of_work(fresh_wiki.session_factory) as session:
        with pytest.raises(KeyExists):
            create_key(session, "bot", ["read"])
        with pytest.raises(ValueError, match="unknown scope"):
            create_key(session, "other", ["read", "write"])
        with pytest.raises(ValueError, match="at least one scope"):
            create_key(session, "other", [])
        with pytest.raises(ValueError, match="without spaces"):
            create_key(session, "has space", ["read"])
        with pytest.raises(NoSuchKey):
            revoke_key(session, "nobody")


def test_key_removed_from_configuration_is_revoked_at_start_up(
    make_client: Callable[..., TestClient], fresh_wiki: WikiFixture
) -> None:
    with unit_of_work(fresh_wiki.session_factory) as session:
        cli_secret = create_key(session, "made-by-hand", ["read"])
    first = make_client(fresh_wiki, open_reads=False)
    assert first.get("/pages", headers=bearer(READ_KEY)).status_code == 200
    # restart with the reader key gone from the configuration
    second = make_client(fresh_wiki, open_reads=False, api_keys=[k for k in KEYS if not k.startswith("reader:")])
    refused = second.get("/pages", headers=bearer(READ_KEY))
    assert refused.status_code == 401
    assert second.get("/pages", headers=bearer(cli_secret)).status_code == 200  # CLI keys are not configuration
    assert second.post("/sources", headers=bearer(INGEST_KEY), files={"file": ("x.md", b"")}).status_code != 401
    with fresh_wiki.session_factory() as session:
        rows = {k.name: k for k in list_keys(session)}
    assert rows["reader"].revoked
    assert rows["reader"].revoked_at is not None
    assert not rows["ingester"].revoked
    assert not rows["made-by-hand"].revoked
    # no keys configured at all: every bootstrap key goes
    third = make_client(fresh_wiki, open_reads=False, api_keys=[])
    assert third.get("/pages", headers=bearer(INGEST_KEY)).status_code == 401
    assert third.get("/pages", headers=bearer(cli_secret)).status_code == 200
    # configured again: it is back
    fourth = make_client(fresh_wiki, open_reads=False)
    assert fourth.get("/pages", headers=bearer(READ_KEY)).status_code == 200


def _lore(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
    env.update(LORE_PATHS__DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "lore", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_keys_commands(tmp_path: Path) -> None:
    made = _lore(tmp_path, "keys", "create", "agent", "--scope", "read", "--scope", "curate")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("lore_")
    assert len(secret) > 30

    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'lore.db'}")
    with Session(engine) as session:
        principal = lookup_key(session, secret)
    assert principal is not None
    assert principal.scopes == frozenset({"read", "curate"})

    again = _lore(tmp_path, "keys", "create", "agent", "--scope", "read")
    assert again.returncode == 2
    assert "exists already" in again.stderr
    bad = _lore(tmp_path, "keys", "create", "x", "--scope", "root")
    assert bad.returncode == 2
    assert "unknown scope" in bad.stderr

    listed = _lore(tmp_path, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["scopes"], r["revoked"]) for r in rows] == [("agent", ["curate", "read"], False)]
    assert secret not in listed.stdout
    assert hash_secret(secret) not in listed.stdout
    table = _lore(tmp_path, "keys", "list")
    assert "agent" in table.stdout
    assert "curate read" in table.stdout

    revoked = _lore(tmp_path, "keys", "revoke", "agent")
    assert revoked.returncode == 0, revoked.stderr
    with Session(engine) as session:
        assert lookup_key(session, secret) is None
    engine.dispose()
    missing = _lore(tmp_path, "keys", "revoke", "nobody")
    assert missing.returncode == 2
    assert "no key named" in missing.stderr
