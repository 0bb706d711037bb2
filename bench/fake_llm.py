"""A fake OpenAI-compatible model server.

THIS IS A TEST DOUBLE for tests and benchmarks only. Lore never uses it as a default or a fallback: it
runs only when a test, a benchmark or a person starts it (``lore fake-llm``, or ``FakeLLM`` in code).

It is a real HTTP server (stdlib ``ThreadingHTTPServer``) speaking the OpenAI chat-completions API:

- ``POST /v1/chat/completions``: answers the project's own response schemas with plausible content
  derived from the request (see ``bench.fake_answers``); the stage is recognised from the response
  schema (``structured_outputs.json``, ``response_format.schema`` or ``response_format.json_schema``);
- ``GET /v1/models``, ``GET /health``, ``GET /stats`` (call, outcome and token counts);
- ``POST /control``: change knobs at run time (``{"config": {...}, "script": [...], "reset": true,
  "outage": {"seconds": 5, "kind": "error"}}``).

Knobs (``FakeConfig``): per-call latency, a concurrency limit (excess requests queue, as on a real
server), rates of 500s, malformed JSON, valid JSON of the wrong shape, hangs (no answer until the client
gives up), slow first bytes (``slow_s`` of silence, then a good answer), truncation (``finish_reason:
"length"``), cut bodies (the connection closes halfway through the promised bytes), ``down`` (503 to
everything), a context size (a longer prompt gets vLLM's context-length 400), and ``mode="obedient"``,
which follows instructions planted in the fenced document. A ``script`` of outcomes, consumed one per
request before the rates apply, makes a test's failure sequence exact; an ``outage`` makes the server
down (503) or failing (500) for a number of seconds, then well again by itself.

Deterministic for a seed: each fault roll depends on the seed, the request body and how often that
same body was seen before, never on thread timing. Usage reports estimated tokens (4 characters per
token) and, as ``cached_tokens``, the common prefix with the previous prompt of the same stage.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from bench import fake_answers

OUTCOMES = ("ok", "error", "malformed", "ignore_schema", "hang", "slow", "truncate", "cut", "overflow", "down")
OUTAGE_KINDS = ("down", "error")


@dataclass
class FakeConfig:
    """The fake server's knobs (rates are probabilities per request, 0..1)."""

    model: str = "fake-llm"
    latency_ms: float = 0.0
    concurrency: int = 16
    failure_rate: float = 0.0
    malformed_rate: float = 0.0
    ignore_schema_rate: float = 0.0
    hang_rate: float = 0.0
    slow_rate: float = 0.0
    truncate_rate: float = 0.0
    cut_rate: float = 0.0
    down: bool = False
    context_tokens: int = 32768
    # Cut an answer longer than the request's max_tokens, as a real server does. Off by default: the fake's
    # answers repeat whole sentences per entity, far longer than a real model's for the same text.
    honour_max_tokens: bool = False
    hang_s: float = 300.0
    slow_s: float = 2.0
    seed: int = 0
    mode: Literal["normal", "obedient"] = "normal"


def estimate_tokens(text: str) -> int:
    """The fake's token count: about four characters per token."""
    return -(-len(text) // 4)


@dataclass
class Reply:
    """One answer: HTTP status, JSON body, and ``cut`` (send half of the promised bytes, then hang up)."""

    status: int
    payload: dict[str, Any]
    cut: bool = False


class FakeModel:
    """The request handling of the fake server, independent of HTTP (thread-safe)."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(self.config.concurrency)
        self._script: deque[str] = deque()
        self._seen: Counter[str] = Counter()
        self._last_prompt: dict[str, str] = {}
        self._outage_until = 0.0
        self._outage_kind = "down"
        self.reset_stats()

    def reset_stats(self) -> None:
        with self._lock:
            self._stats: dict[str, Any] = {
                "requests": 0, "by_stage": Counter(), "by_outcome": Counter(), "prompt_tokens": 0,
                "completion_tokens": 0, "cached_tokens": 0, "in_flight": 0, "max_in_flight": 0,
            }

    def stats(self) -> dict[str, Any]:
        """Counts so far: requests, per stage, per outcome, tokens, peak concurrency."""
        with self._lock:
            out = dict(self._stats)
            out["by_stage"] = dict(self._stats["by_stage"])
            out["by_outcome"] = dict(self._stats["by_outcome"])
            return out

    def script(self, *outcomes: str) -> None:
        """Queue exact outcomes for the next requests (one each), ahead of the random rates."""
        bad = [o for o in outcomes if o not in OUTCOMES]
        if bad:
            raise ValueError(f"unknown outcome(s) {bad}; expected {OUTCOMES}")
        with self._lock:
            self._script.extend(outcomes)

    def outage(self, seconds: float, kind: str = "down") -> None:
        """Fail every chat request for the next ``seconds``, then recover by itself.

        Args:
            seconds: how long the outage lasts from now (0 ends a running one).
            kind: ``down`` answers 503 (and ``/v1/models`` fails, as a dead server's would);
                ``error`` answers 500 (a burst of internal errors; the server still lists its models).
        """
        if kind not in OUTAGE_KINDS:
            raise ValueError(f"unknown outage kind {kind!r}; expected {OUTAGE_KINDS}")
        if seconds < 0:
            raise ValueError("an outage cannot last a negative time")
        with self._lock:
            self._outage_until = time.monotonic() + seconds
            self._outage_kind = kind

    def failing(self) -> str | None:
        """``down`` or ``error`` while the server fails every request (knob or outage), else None."""
        if self.config.down:
            return "down"
        with self._lock:
            return self._outage_kind if time.monotonic() < self._outage_until else None

    def configure(self, **knobs: Any) -> None:
        """Change knobs while running (e.g. ``down=True``)."""
        names = {f.name for f in fields(FakeConfig)}
        with self._lock:
            for key, value in knobs.items():
                if key not in names:
                    raise ValueError(f"unknown knob {key!r}")
                setattr(self.config, key, value)
            if "concurrency" in knobs:  # takes effect for requests that arrive from now on
                self._slots = threading.Semaphore(self.config.concurrency)

    def _count(self, stage: str, outcome: str, prompt: int = 0, completion: int = 0, cached: int = 0) -> None:
        with self._lock:
            s = self._stats
            s["by_stage"][stage] += 1
            s["by_outcome"][outcome] += 1
            s["prompt_tokens"] += prompt
            s["completion_tokens"] += completion
            s["cached_tokens"] += cached

    def _decide(self, body: dict[str, Any], raw: bytes) -> str:
        c = self.config
        with self._lock:
            if self._script:
                return self._script.popleft()
            digest = hashlib.sha256(raw).hexdigest()
            self._seen[digest] += 1
            rng = random.Random(f"{c.seed}:{digest}:{self._seen[digest]}")
        for outcome, rate in (("error", c.failure_rate), ("malformed", c.malformed_rate),
                              ("ignore_schema", c.ignore_schema_rate), ("hang", c.hang_rate),
                              ("slow", c.slow_rate), ("truncate", c.truncate_rate), ("cut", c.cut_rate)):
            if rng.random() < rate:
                return outcome
        return "ok"

    def chat(self, body: dict[str, Any], raw: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one chat-completions request: ``(status, json body)``."""
        reply = self.respond(body, raw)
        return reply.status, reply.payload

    def respond(self, body: dict[str, Any], raw: bytes) -> Reply:
        """Answer one chat-completions request, saying whether the HTTP layer must cut the body short."""
        with self._lock:
            self._stats["requests"] += 1
        listed = body.get("messages")
        messages: list[dict[str, Any]] = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
        schema = fake_answers.find_schema(body)
        stage = fake_answers.stage_of(schema, messages)
        prompt = "".join(f"{m.get('role')}:{m.get('content')}\n" for m in messages)
        prompt_tokens = estimate_tokens(prompt) + 4 * len(messages)
        failing = self.failing()
        if failing == "down":
            self._count(stage, "down")
            return Reply(503, _error("the model server is down (fake)", "ServiceUnavailable", 503))
        if failing == "error":
            self._count(stage, "error")
            return Reply(500, _error("internal error (fake outage)", "InternalServerError", 500))
        outcome = self._decide(body, raw)
        requested = prompt_tokens + int(body.get("max_tokens") or 0)
        if outcome == "overflow" or requested > self.config.context_tokens:
            self._count(stage, "overflow")
            msg = (f"This model's maximum context length is {self.config.context_tokens} tokens. However, you "
                   f"requested {requested} tokens ({prompt_tokens} in the messages, {body.get('max_tokens')} "
                   "in the completion). Please reduce the length of the messages or completion.")
            return Reply(400, _error(msg, "BadRequestError", 400))
        if outcome == "down":
            self._count(stage, "down")
            return Reply(503, _error("the model server is down (fake)", "ServiceUnavailable", 503))
        with self._slot():
            if self.config.latency_ms > 0:
                self.stop_event.wait(self.config.latency_ms / 1000.0)
            if outcome == "hang":
                self._count(stage, "hang")
                self.stop_event.wait(self.config.hang_s)
                return Reply(504, _error("hung (fake)", "Timeout", 504))
            if outcome == "slow":  # silence before the first byte, then a good answer
                self.stop_event.wait(self.config.slow_s)
            if outcome == "error":
                self._count(stage, "error")
                return Reply(500, _error("internal error (fake)", "InternalServerError", 500))
            answer = fake_answers.answer(stage, schema, messages, obedient=self.config.mode == "obedient")
        content = json.dumps(answer, ensure_ascii=False)
        finish = "stop"
        if outcome == "malformed":
            content = content[: max(1, len(content) // 2)] + ' "'
        elif outcome == "ignore_schema":
            content = json.dumps({"answer": "This document is about several things.", "confidence": 0.5})
        elif outcome == "truncate":
            content, finish = content[: max(1, len(content) // 2)], "length"
        limit = int(body.get("max_tokens") or 0)
        if self.config.honour_max_tokens and finish == "stop" and 0 < limit < estimate_tokens(content):
            content, finish = content[: limit * 4], "length"
        cached = self._cached(stage, prompt)
        completion_tokens = estimate_tokens(content)
        self._count(stage, outcome, prompt_tokens, completion_tokens, cached)
        with self._lock:
            n = self._stats["requests"]
        return Reply(200, {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.config.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }, cut=outcome == "cut")

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """The concurrency limit: a request waits for a free slot, as on a busy real server."""
        slots = self._slots
        acquired = False
        while not (acquired := slots.acquire(timeout=0.1)) and not self.stop_event.is_set():
            pass
        with self._lock:
            self._stats["in_flight"] += 1
            self._stats["max_in_flight"] = max(self._stats["max_in_flight"], self._stats["in_flight"])
        try:
            yield
        finally:
            with self._lock:
                self._stats["in_flight"] -= 1
            if acquired:
                slots.release()

    def _cached(self, stage: str, prompt: str) -> int:
        with self._lock:
            previous = self._last_prompt.get(stage, "")
            self._last_prompt[stage] = prompt
        n = 0
        for a, b in zip(previous, prompt, strict=False):
            if a != b:
                break
            n += 1
        return n // 4


def _error(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}, "object": "error"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes; Nagle would add 40 ms
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any, *, cut: bool = False) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if cut:  # the promised length never arrives: the connection closes halfway
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. after a hang)
            self.close_connection = True

    def do_GET(self) -> None:
        fake = self.server.fake
        path = self.path.split("?")[0].rstrip("/")
        down = fake.failing() == "down"
        if path == "/health":
            self._send(503 if down else 200, {"status": "down" if down else "ok"})
        elif path == "/v1/models" and down:
            self._send(503, _error("the model server is down (fake)", "ServiceUnavailable", 503))
        elif path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": fake.config.model, "object": "model",
                                                          "owned_by": "fake-llm"}]})
        elif path == "/stats":
            self._send(200, fake.stats())
        else:
            self._send(404, _error(f"no route {path}", "NotFound", 404))

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            self._send(400, _error(f"invalid JSON body: {exc}", "BadRequestError", 400))
            return
        path = self.path.split("?")[0].rstrip("/")
        if path == "/v1/chat/completions":
            try:
                reply = fake.respond(body, raw)
            except Exception as exc:  # a bug or an odd request: answer like a server would, never hang up
                reply = Reply(500, _error(f"fake-llm failed: {type(exc).__name__}: {exc}", "InternalError", 500))
            self._send(reply.status, reply.payload, cut=reply.cut)
        elif path == "/control":
            try:
                fake.configure(**(body.get("config") or {}))
                fake.script(*(body.get("script") or []))
                outage = body.get("outage")
                if isinstance(outage, dict):
                    fake.outage(float(outage.get("seconds", 0)), str(outage.get("kind", "down")))
            except (ValueError, TypeError) as exc:
                self._send(400, _error(str(exc), "BadRequestError", 400))
                return
            if body.get("reset"):
                fake.reset_stats()
            self._send(200, {"config": asdict(fake.config)})
        else:
            self._send(404, _error(f"no route {path}", "NotFound", 404))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeModel) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished (killed mid-request, a keep-alive socket reset) is not an error here."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeLLM:
    """The fake server on a loopback port in a background thread (a context manager).

    Example::

        with FakeLLM(failure_rate=0.1, seed=3) as fake:
            client = ModelClient([Endpoint(fake.base_url, "fake-llm")])
            ...
            fake.stats()["requests"]

    Args:
        config: all knobs at once; or pass single knobs as keyword arguments.
        host: address to bind (loopback by default).
        port: 0 picks a free port.
    """

    def __init__(self, config: FakeConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 **knobs: Any) -> None:
        self.model = FakeModel(config or FakeConfig())
        if knobs:
            self.model.configure(**knobs)
        self._server = _Server((host, port), self.model)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in ``/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeLLM:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung and sleeping requests are released."""
        self.model.stop_event.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """Counts of calls, outcomes and tokens so far."""
        return self.model.stats()

    def script(self, *outcomes: str) -> None:
        """Queue exact outcomes for the next requests (see ``OUTCOMES``)."""
        self.model.script(*outcomes)

    def configure(self, **knobs: Any) -> None:
        """Change knobs while running."""
        self.model.configure(**knobs)

    def outage(self, seconds: float, kind: str = "down") -> None:
        """Fail every request for ``seconds`` (``down``: 503, ``error``: 500), then recover by itself."""
        self.model.outage(seconds, kind)


def serve(config: FakeConfig, host: str = "127.0.0.1", port: int = 8099) -> None:
    """Serve in the foreground until interrupted (``lore fake-llm``)."""
    fake = FakeLLM(config, host=host, port=port)
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.model.stop_event.set()
        fake._server.server_close()
