"""The embedded model server: started, checked and stopped for real (llama-cpp-python on loopback)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

from lore.embedded_model import MODEL_SHA256, ModelFileError
from lore.llama_server import LlamaServer, ModelServerError, verify_once
from tests.services import free_port

MODEL = Path(sys.prefix) / "share" / "lore" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def test_marker_spares_the_hash_until_the_file_changes(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"not the model")
    marker = tmp_path / "run" / "verified.json"
    with pytest.raises(ModelFileError, match="sha256"):
        verify_once(model, marker)
    assert not marker.exists()  # a failed check vouches for nothing
    st = model.stat()
    stamp = {"path": str(model.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": MODEL_SHA256}
    marker.parent.mkdir()
    marker.write_text(json.dumps(stamp))
    assert verify_once(model, marker) is False  # the marker vouches for this exact file
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ModelFileError):
        verify_once(model, marker)  # touched: hashed again, and it is not the model


def test_missing_model_file_is_named():
    with pytest.raises(ModelFileError, match="make setup"):
        verify_once(Path("/nonexistent/model.gguf"), Path("/nonexistent/marker.json"))


def test_refuses_a_port_that_is_taken(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"x")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        server = LlamaServer(model, alias="m", port=s.getsockname()[1], log_path=tmp_path / "model.log")
        with pytest.raises(ModelServerError, match="LORE_LLM__LOCAL_PORT"):
            server.start()
    assert server.child is None


def test_a_server_that_dies_reports_its_log(tmp_path):
    model = tmp_path / "broken.gguf"
    model.write_bytes(b"this is not a GGUF file" * 100)
    server = LlamaServer(model, alias="m", port=free_port(), context_tokens=512, log_path=tmp_path / "model.log")
    with pytest.raises(ModelServerError, match="exited"):
        server.start(timeout_s=120)
    assert not server.running()


def test_command_line_matches_the_settings():
    server = LlamaServer(Path("/m.gguf"), alias="qwen", port=8123, context_tokens=4096, threads=3)
    cmd = server.command()
    assert cmd[1:3] == ["-m", "llama_cpp.server"]
    pairs = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert pairs["--model"] == "/m.gguf"
    assert pairs["--model_alias"] == "qwen"
    assert pairs["--host"] == "127.0.0.1"
    assert pairs["--port"] == "8123"
    assert pairs["--n_ctx"] == "4096"
    assert pairs["--n_threads"] == "3"
    assert pairs["--chat_format"] == "chatml"
    assert server.base_url == "http://127.0.0.1:8123/v1"


@pytest.mark.slow
def test_real_model_answers_a_schema_bound_chat_completion(tmp_path):
    if not MODEL.is_file():
        pytest.fail(f"the embedded model is not installed at {MODEL}; run `make setup`")
    assert verify_once(MODEL, tmp_path / "verified.json") is True
    assert verify_once(MODEL, tmp_path / "verified.json") is False
    schema = {
        "type": "object",
        "properties": {"service": {"type": "string"}, "port": {"type": "integer"}},
        "required": ["service", "port"],
    }
    server = LlamaServer(
        MODEL, alias="qwen2.5-coder-1.5b-instruct", port=free_port(), context_tokens=2048,
        log_path=tmp_path / "model.log",
    )
    with server:
        listed = httpx.get(f"{server.base_url}/models", timeout=10).json()
        assert [m["id"] for m in listed["data"]] == ["qwen2.5-coder-1.5b-instruct"]
        resp = httpx.post(
            f"{server.base_url}/chat/completions",
            json={
                "model": "qwen2.5-coder-1.5b-instruct",
                "messages": [
                    {"role": "system", "content": "Answer with JSON only."},
                    {"role": "user", "content": "The billing service listens on port 8443. Which service and port?"},
                ],
                "temperature": 0,
                "max_tokens": 60,
                "response_format": {"type": "json_object", "schema": schema},
            },
            timeout=300,
        )
        assert resp.status_code == 200, resp.text
        answer = json.loads(resp.json()["choices"][0]["message"]["content"])
        assert set(answer) == {"service", "port"}
        assert isinstance(answer["port"], int)
        pid = server.child.pid
    assert not server.running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_missing_local_extra_is_named(tmp_path, monkeypatch):
    import importlib.util

    from lore.config import load_settings
    from lore.llama_server import embedded_server

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    for key in [k for k in os.environ if k.startswith("LORE_")]:
        monkeypatch.delenv(key)
    settings = load_settings(llm={"local_model_path": gguf, "local_port": free_port(), "model": "m"})
    server = embedded_server(settings, tmp_path / "model.log")
    assert (server.model_path, server.alias, server.port) == (gguf, "m", settings.llm.local_port)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(ModelServerError, match=r"lore\[local\]"):
        server.start(timeout_s=5)
    assert server.child is None  # nothing was started
