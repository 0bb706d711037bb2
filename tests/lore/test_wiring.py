"""The composition root builds working collaborators from settings (real SQLite, real git, real app)."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lore.config import ConfigError, load_settings
from lore.wiring import Wiring, embedded_base_url, make_recorder, migrate, model_urls, uses_embedded_model
from store.models import ModelCall
from synth.client import CallRecord


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("LORE_")]:
        monkeypatch.delenv(key)
    s = load_settings(paths={"data_dir": tmp_path / "data", "ingest_dir": tmp_path / "inbox"})
    migrate(s)
    return s


def test_model_endpoints_in_order(settings):
    assert uses_embedded_model(settings)
    assert model_urls(settings) == [embedded_base_url(settings)] == ["http://127.0.0.1:8077/v1"]
    remote = settings.model_copy(
        update={"llm": settings.llm.model_copy(update={
            "base_url": "http://gpu-a:8000/v1",
            "fallback_urls": ["http://gpu-b:8000/v1", "http://gpu-a:8000/v1"],
        })}
    )
    assert not uses_embedded_model(remote)
    assert model_urls(remote) == ["http://gpu-a:8000/v1", "http://gpu-b:8000/v1"]


def test_model_calls_are_recorded_as_rows(settings):
    wiring = Wiring(settings)
    record = make_recorder(wiring.session_factory)
    record(CallRecord(stage="extract", model="m", endpoint="http://x/v1", attempt=1, outcome="ok",
                      latency_ms=12.5, prompt_tokens=100, completion_tokens=20, job_id=3, source_id="ab"))
    with wiring.session_factory() as s:
        row = s.scalars(select(ModelCall)).one()
    assert (row.stage, row.outcome, row.prompt_tokens, row.job_id) == ("extract", "ok", 100, 3)
    wiring.close()


def test_worker_context_reads_only_files_inside_the_ingest_folder(settings, tmp_path):
    wiring = Wiring(settings)
    ctx = wiring.worker_context()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "note.md").write_text("# Note\n\nThe queue host is mq-3.\n")
    outside = tmp_path / "secret.md"
    outside.write_text("not for Lore")
    assert ctx.intake_file is not None
    assert len(ctx.intake_file(inbox / "note.md")) == 1  # one extract job
    with pytest.raises(ValueError, match="not inside"):
        ctx.intake_file(outside)
    assert ctx.synth.worker_id.endswith(f":{os.getpid()}")
    wiring.close()


def test_api_app_is_wired_and_serves(settings):
    wiring = Wiring(settings)
    with TestClient(wiring.api_app()) as client:
        assert client.get("/health/live").status_code == 200
        assert client.get("/pages").status_code == 200
    wiring.close()


INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}  # fmt: skip
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_api_settings_reach_the_app(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("LORE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LORE_API__MCP_ALLOWED_HOSTS", '["lore.example.com:*", "10.1.2.3"]')
    monkeypatch.setenv("LORE_API__CORS_ORIGINS", '["https://portal.example.com"]')
    s = load_settings(paths={"data_dir": tmp_path / "data", "ingest_dir": tmp_path / "inbox"})
    migrate(s)
    wiring = Wiring(s)
    with TestClient(wiring.api_app()) as client:
        for host in ("lore.example.com:8443", "10.1.2.3", "127.0.0.1:8000"):
            ok = client.post("/mcp", json=INIT, headers={**MCP_HEADERS, "Host": host})
            assert ok.status_code == 200, (host, ok.text)
        for host in ("evil.example.com", "10.1.2.3:8000", "lore.example.com.evil.net"):
            assert client.post("/mcp", json=INIT, headers={**MCP_HEADERS, "Host": host}).status_code == 421, host
        preflight = client.options(
            "/pages",
            headers={"Origin": "https://portal.example.com", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://portal.example.com"
        other = client.get("/pages", headers={"Origin": "https://elsewhere.example.com"})
        assert "access-control-allow-origin" not in other.headers
    wiring.close()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LORE_API__MCP_ALLOWED_HOSTS", '["http://lore.example.com"]'),
        ("LORE_API__MCP_ALLOWED_HOSTS", '["lore.example.com:http"]'),
        ("LORE_API__ROOT_PATH", "lore/"),
        ("LORE_API__CORS_ORIGINS", '["portal.example.com"]'),
        ("LORE_API__SESSION_SECRET", "too-short"),
        ("LORE_API__SESSION_MAX_AGE_S", "5"),
    ],
)
def test_bad_api_settings_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_session_secret_from_settings_or_kept_in_the_data_folder(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("LORE_")]:
        monkeypatch.delenv(key)
    paths = {"data_dir": tmp_path / "data", "ingest_dir": tmp_path / "inbox"}
    generated = Wiring(load_settings(paths=paths)).session_secret()
    key_file = tmp_path / "data" / "session.key"
    assert key_file.read_text().strip() == generated
    assert len(generated) >= 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert Wiring(load_settings(paths=paths)).session_secret() == generated  # logins survive a restart
    monkeypatch.setenv("LORE_API__SESSION_SECRET", "x" * 40)
    assert Wiring(load_settings(paths=paths)).session_secret() == "x" * 40
    assert "x" * 40 not in load_settings(paths=paths).model_dump_json()  # a secret, masked when shown
