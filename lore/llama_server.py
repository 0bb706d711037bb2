"""The embedded model server: llama-cpp-python's OpenAI-compatible server on loopback.

``lore up`` starts it as a child process when ``LORE_LLM__BASE_URL`` is unset::

    python -m llama_cpp.server --model <gguf> --host 127.0.0.1 --port <local_port> --n_ctx <context>
        --n_threads <threads> --chat_format chatml --model_alias <settings.llm.model>

Qwen2.5 models speak ChatML, and llama.cpp's ChatML handler honours
``response_format: {"type": "json_object", "schema": ...}`` with a grammar, which is how the model client
asks for structured output in the ``llamacpp`` dialect. The default model file is checked against its
published sha256 once; a small marker beside the other run files records the file's size and mtime, so
later starts do not hash 1 GB again unless the file changed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import time
from pathlib import Path

import httpx

from lore.config import Settings
from lore.embedded_model import MODEL_SHA256, ModelFileError, verify_model
from lore.process import Child


class ModelServerError(Exception):
    """The embedded model server could not be started or did not become ready."""


def verify_once(model_path: Path, marker: Path) -> bool:
    """Verify the default model's sha256 unless ``marker`` says this exact file was verified before.

    Returns:
        True when the file was hashed now, False when the marker vouched for it.

    Raises:
        ModelFileError: the file is missing or its sha256 is wrong.
    """
    if not model_path.is_file():
        raise ModelFileError(f"model file not found: {model_path} (run `make setup` or `lore model install`)")
    st = model_path.stat()
    stamp = {"path": str(model_path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": MODEL_SHA256}
    try:
        if json.loads(marker.read_text()) == stamp:
            return False
    except (OSError, ValueError):
        pass
    verify_model(model_path)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, marker)
    return True


def port_in_use(host: str, port: int) -> bool:
    """True when something already accepts connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def embedded_server(settings: Settings, log_path: Path | None) -> LlamaServer:
    """The embedded model server as the settings describe it: the one place Lore builds it
    (``lore up``, ``lore eval conflicts`` and ``lore eval qa`` start it through here).

    Args:
        settings: ``LORE_LLM__LOCAL_*``, the model name and file.
        log_path: where the server's output goes (keep it off stdout: commands print JSON there).
    """
    llm = settings.llm
    return LlamaServer(
        settings.local_model_file(),
        alias=llm.model,
        host=llm.local_host,
        port=llm.local_port,
        context_tokens=llm.local_context_tokens,
        threads=llm.local_threads,
        log_path=log_path,
    )


class LlamaServer:
    """Start, wait for and stop ``python -m llama_cpp.server``.

    Args:
        model_path: the GGUF file.
        alias: the model name clients send (``settings.llm.model``).
        host: address to bind (loopback by default: the server has no authentication).
        port: port to listen on.
        context_tokens: context the server allocates (``--n_ctx``).
        threads: CPU threads (default: all cores).
        log_path: where the server's output goes.
        python: interpreter that has llama-cpp-python installed.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        alias: str,
        host: str = "127.0.0.1",
        port: int = 8077,
        context_tokens: int = 8192,
        threads: int | None = None,
        log_path: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.model_path = model_path
        self.alias = alias
        self.host = host
        self.port = port
        self.context_tokens = context_tokens
        self.threads = threads or os.cpu_count() or 1
        self.log_path = log_path
        self.python = python
        self.child: Child | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ending in ``/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        """The server's command line."""
        return [
            self.python, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.alias,
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.context_tokens),
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
            "--chat_format", "chatml",
            "--use_mlock", "False",
            "--verbose", "False",
        ]  # fmt: skip

    def start(self, *, timeout_s: float = 300.0) -> None:
        """Start the server and return once ``/v1/models`` lists the alias.

        Raises:
            ModelServerError: the port is taken, the process exited, or it was not ready in time.
        """
        if not self.model_path.is_file():
            raise ModelServerError(f"model file not found: {self.model_path} (run `make setup`)")
        if self.python == sys.executable and importlib.util.find_spec("llama_cpp") is None:
            raise ModelServerError(
                "the embedded model server is not installed: `pip install 'lore[local]'` (`make run` does), "
                "or set LORE_LLM__BASE_URL to an OpenAI-compatible server"
            )
        if port_in_use(self.host, self.port):
            raise ModelServerError(
                f"{self.host}:{self.port} is already in use; set LORE_LLM__LOCAL_PORT to a free port, "
                "or LORE_LLM__BASE_URL to use a model server that is already running"
            )
        self.child = Child("model", self.command(), log_path=self.log_path)
        self.child.start()
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout_s: float) -> None:
        """Poll ``/v1/models`` until it lists the alias.

        Raises:
            ModelServerError: the process exited or ``timeout_s`` passed.
        """
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.child is not None and self.child.poll() is not None:
                    tail = self.child.log_tail()
                    raise ModelServerError(f"model server exited with code {self.child.poll()}:\n{tail}")
                try:
                    resp = client.get(f"{self.base_url}/models")
                    if resp.status_code == 200 and any(m.get("id") == self.alias for m in resp.json()["data"]):
                        return
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                time.sleep(0.25)
        raise ModelServerError(f"model server not ready at {self.base_url} after {timeout_s:.0f}s")

    def running(self) -> bool:
        return self.child is not None and self.child.running()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout_s``)."""
        if self.child is not None:
            import signal

            self.child.stop(((signal.SIGTERM, timeout_s),))
            self.child = None

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
