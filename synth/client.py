"""One model client for every OpenAI-compatible server (vLLM, llama.cpp's server, SGLang, Ollama).

``ModelClient.complete(stage, messages, ResponseModel)`` sends one chat completion with structured
output and returns the answer validated by the Pydantic response model. One retry layer per failure
class (DESIGN section 3):

- the HTTP client never retries (httpx's transport retries stay at 0);
- transient failures (connect errors, timeouts, 429, 5xx) are retried here at most ``max_retries``
  times, with jittered exponential backoff, within ``total_s``, and only while the system-wide retry
  budget allows it;
- a circuit breaker per endpoint refuses calls while its server is believed down; endpoints are tried
  in order and the answer names the one that produced it; with every breaker open ``ModelUnavailable``
  tells the job how long to wait;
- the prompt size is checked before the call; a context-length 400 is ``ContextOverflow``, never retried;
- ``finish_reason == "length"`` is asked again once with an instruction to answer shorter (a small
  model at temperature 0 that loops on a junk document loops the same way on a plain retry); cut off
  again is ``OutputTruncated``, which the job treats as permanent;
- an answer that fails validation is repaired once: the validation error goes back to the model in one
  more call; still invalid is ``InvalidAnswer``.

Every HTTP attempt (and every local refusal) is reported to the injected ``recorder`` as a
``CallRecord``. Tests swap the ``httpx`` transport or use ``bench.fake_llm``, never the code.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from synth.breaker import CircuitBreaker
from synth.budget import InMemoryRetryBudget, RetryBudget
from synth.errors import ContextOverflow, InvalidAnswer, ModelUnavailable, OutputTruncated, RequestRejected
from synth.metrics import ModelMetrics
from synth.wire import (
    Endpoint,
    Sampling,
    Timeouts,
    Usage,
    build_payload,
    describe_error,
    estimate_tokens,
    first_choice,
    hash_messages,
    parse_answer,
    parse_usage,
)

__all__ = ["CallRecord", "Completion", "Endpoint", "ModelClient", "Sampling", "Timeouts", "Usage"]

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
Outcome = Literal["ok", "repaired", "invalid", "transient", "overflow", "truncated", "breaker_open", "error"]

_CONTEXT_MSG = re.compile(
    r"context length|context window|maximum context|context size|n_ctx|too many tokens|prompt is too long",
    re.IGNORECASE,
)
REPAIR_INSTRUCTION = (
    "Your answer above does not match the required JSON schema: {errors}\n"
    "Reply again with only the corrected JSON object."
)
SHORTEN_INSTRUCTION = (
    "Your previous answer was cut off: it went past the output limit of {max_tokens} tokens. "
    "Answer again with a shorter JSON object: fewer items, short strings, and no item repeated."
)


@dataclass(frozen=True)
class CallRecord:
    """One HTTP attempt (or one local refusal, ``attempt`` 0 for a pre-call overflow)."""

    stage: str
    model: str
    endpoint: str
    attempt: int
    outcome: Outcome
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int | None = None
    error: str | None = None
    prompt_hash: str | None = None
    job_id: int | None = None
    source_id: str | None = None


@dataclass(frozen=True)
class Completion(Generic[T]):
    """A validated answer. ``usage`` sums every attempt of the call; ``attempts`` counts them."""

    value: T
    endpoint: Endpoint
    model: str
    usage: Usage
    attempts: int = 1
    repaired: bool = False

    @property
    def assisted_by(self) -> str:
        """The ``Assisted-by`` commit trailer value: ``"<model> (<server label>)"``."""
        return f"{self.model} ({self.endpoint.label})"


class _Transient(Exception):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class _Call:
    """Book-keeping of one logical call."""

    stage: str
    prompt_hash: str
    job_id: int | None
    source_id: str | None
    attempts: int = 0
    retries: int = 0
    repaired: bool = False
    shortened: bool = False
    usage: Usage = field(default_factory=Usage)


def _retry_after_header(resp: httpx.Response) -> float | None:  # seconds form only
    try:
        return max(0.0, float(resp.headers.get("retry-after", "")))
    except ValueError:
        return None


class ModelClient:
    """The model client. Plain values in; no settings are read here.

    Args:
        endpoints: servers in order of preference (at least one).
        sampling: temperature, top_p, seed, default max_tokens.
        timeouts: connect/read per attempt and total per logical call.
        context_tokens: the served model's context window (prompt + answer must fit).
        max_retries: retries of transient errors per logical call (the repair call is not a retry).
        backoff_base_s: first backoff; it doubles per retry, jittered, up to ``backoff_max_s``.
        breaker_failures: consecutive failures that open an endpoint's breaker; ``breaker_reset_s``:
            seconds before an open breaker lets a trial call through.
        breakers: one breaker per endpoint to use instead (e.g. ``RedisCircuitBreaker``, shared by
            every worker); default: this process's own, built from the two settings above.
        thinking: ask reasoning models to think (``chat_template_kwargs.enable_thinking``).
        retry_budget: shared budget; default an in-memory one with ratio 0.2.
        recorder: receives one ``CallRecord`` per attempt; its failures are logged, never raised.
        metrics: observes each attempt's latency and tokens and the breakers' states (``synth.metrics``).
        tokenizer: optional exact token counter for the context check.
        http_client: an ``httpx.Client`` to use (not closed by ``close``).
        transport: an ``httpx`` transport for the client built here (tests capture requests with it).
        clock: monotonic clock; sleep: how to wait; rng: jitter source.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        sampling: Sampling | None = None,
        timeouts: Timeouts | None = None,
        context_tokens: int = 8192,
        max_retries: int = 2,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 10.0,
        breaker_failures: int = 5,
        breaker_reset_s: float = 30.0,
        breakers: Sequence[CircuitBreaker] | None = None,
        thinking: bool = False,
        retry_budget: RetryBudget | None = None,
        recorder: Callable[[CallRecord], None] | None = None,
        metrics: ModelMetrics | None = None,
        tokenizer: Callable[[str], int] | None = None,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        self.endpoints = tuple(endpoints)
        self.sampling = sampling or Sampling()
        self.timeouts = timeouts or Timeouts()
        self.context_tokens = context_tokens
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.thinking = thinking
        if breakers is not None and len(breakers) != len(self.endpoints):
            raise ValueError("one breaker per endpoint is needed")
        self.breakers = tuple(breakers) if breakers is not None else tuple(
            CircuitBreaker(breaker_failures, breaker_reset_s, clock=clock) for _ in self.endpoints
        )
        self.budget: RetryBudget = retry_budget if retry_budget is not None else InMemoryRetryBudget(0.2)
        self._recorder = recorder
        self._metrics = metrics
        self._tokenizer = tokenizer
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport or httpx.HTTPTransport(retries=0))

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the one entry point ------------------------------------------------------------------

    def complete(
        self,
        stage: str,
        messages: list[dict[str, Any]],
        response_model: type[T],
        *,
        job_id: int | None = None,
        source_id: str | None = None,
        max_tokens: int | None = None,
        validation_context: dict[str, Any] | None = None,
        shorten: bool = True,
    ) -> Completion[T]:
        """Ask for a structured answer and return it validated.

        Args:
            stage: extract | resolve | judge | compose (recorded with every attempt).
            messages: the prompt, e.g. from ``synth.prompts.*.build_messages``.
            response_model: the Pydantic model the answer must validate against.
            job_id: recorded with each attempt.
            source_id: recorded with each attempt.
            max_tokens: answer budget for this call (default ``sampling.max_tokens``).
            validation_context: passed to Pydantic validators (e.g. the claim ids that may be cited).
            shorten: on a cut-off answer, ask once more to answer shorter; False raises at the first cut,
                for a caller that has a better remedy (extraction splits its chunk in two).

        Returns:
            The validated answer with the endpoint and model that produced it and the summed usage.

        Raises:
            ContextOverflow: the prompt does not fit (checked locally, or the server said so).
            ModelUnavailable: every endpoint is down, retries or the retry budget ran out.
            OutputTruncated: the answer hit the token limit, and again when asked to answer shorter
                (at once with ``shorten=False``).
            InvalidAnswer: the answer stayed invalid after one repair call.
            RequestRejected: the server refused the request (4xx).
        """
        sampling = replace(self.sampling, max_tokens=max_tokens or self.sampling.max_tokens)
        call = _Call(stage, hash_messages(messages), job_id, source_id)
        needed = estimate_tokens(messages, self._tokenizer) + sampling.max_tokens
        if needed > self.context_tokens:
            msg = f"prompt needs about {needed} tokens with the answer; the context holds {self.context_tokens}"
            self._record(call, self.endpoints[0], 0, "overflow", error=msg)
            raise ContextOverflow(msg)
        deadline = self._clock() + self.timeouts.total_s
        self.budget.record_attempt()
        sent = list(messages)
        while True:
            endpoint, breaker = self._pick(call)
            call.attempts += 1
            body = build_payload(endpoint, sent, response_model, sampling, thinking=self.thinking)
            started = self._clock()
            try:
                data = self._post(endpoint, body, deadline)
            except _Transient as exc:
                breaker.record_failure()
                self._record(call, endpoint, call.attempts, "transient", started, error=str(exc))
                self._wait_for_retry(call, exc, deadline)
                continue
            except ContextOverflow as exc:
                breaker.record_success()
                self._record(call, endpoint, call.attempts, "overflow", started, error=str(exc))
                raise
            except RequestRejected as exc:
                breaker.record_success()
                self._record(call, endpoint, call.attempts, "error", started, error=str(exc))
                raise
            except BaseException:
                breaker.record_failure()
                raise
            breaker.record_success()
            usage = parse_usage(data)
            call.usage = call.usage + usage
            content, finish = first_choice(data)
            if finish == "length":
                msg = f"answer cut at max_tokens={sampling.max_tokens}"
                self._record(call, endpoint, call.attempts, "truncated", started, usage, error=msg)
                if not shorten:
                    raise OutputTruncated(msg)
                if call.shortened:
                    raise OutputTruncated(f"{msg}, twice (the second time asked to answer shorter)")
                call.shortened = True
                sent = [*sent, {"role": "user", "content": SHORTEN_INSTRUCTION.format(max_tokens=sampling.max_tokens)}]
                if estimate_tokens(sent, self._tokenizer) + sampling.max_tokens > self.context_tokens:
                    raise OutputTruncated(f"{msg}; asking again shorter would not fit the context")
                continue
            try:
                value = parse_answer(response_model, content, validation_context)
            except (ValidationError, ValueError) as exc:
                errors = describe_error(exc)
                self._record(call, endpoint, call.attempts, "invalid", started, usage, error=errors)
                if call.repaired:
                    raise InvalidAnswer(f"{stage}: answer still invalid after one repair: {errors}") from None
                call.repaired = True
                sent = [
                    *messages,
                    {"role": "assistant", "content": content},
                    {"role": "user", "content": REPAIR_INSTRUCTION.format(errors=errors)},
                ]
                if estimate_tokens(sent, self._tokenizer) + sampling.max_tokens > self.context_tokens:
                    raise InvalidAnswer(f"{stage}: answer invalid ({errors}); a repair would not fit") from None
                continue
            outcome: Outcome = "repaired" if call.repaired else "ok"
            self._record(call, endpoint, call.attempts, outcome, started, usage)
            return Completion(value, endpoint, endpoint.model, call.usage, call.attempts, call.repaired)

    def _pick(self, call: _Call) -> tuple[Endpoint, CircuitBreaker]:
        for endpoint, breaker in zip(self.endpoints, self.breakers, strict=True):
            if breaker.allow():
                return endpoint, breaker
        wait = min(b.retry_after() for b in self.breakers)
        msg = f"all {len(self.endpoints)} model endpoint(s) have an open circuit breaker"
        self._record(call, self.endpoints[0], call.attempts + 1, "breaker_open", error=msg)
        raise ModelUnavailable(msg, retry_after_s=wait)

    def _wait_for_retry(self, call: _Call, exc: _Transient, deadline: float) -> None:
        hint = min(b.retry_after() for b in self.breakers) or self.breakers[0].reset_s
        if call.retries >= self.max_retries:
            raise ModelUnavailable(
                f"{call.stage}: model failed {call.attempts} time(s): {exc}", retry_after_s=hint
            ) from None
        cap = min(self.backoff_max_s, self.backoff_base_s * 2**call.retries)
        wait = self._rng.uniform(cap / 2, cap)
        if exc.retry_after_s is not None:
            wait = max(wait, min(exc.retry_after_s, self.backoff_max_s))
        if self._clock() + wait >= deadline:
            raise ModelUnavailable(f"{call.stage}: total time spent: {exc}", retry_after_s=hint) from None
        if not self.budget.try_spend_retry():
            raise ModelUnavailable(f"{call.stage}: retry budget spent: {exc}", retry_after_s=hint) from None
        call.retries += 1
        self._sleep(wait)

    def _post(self, endpoint: Endpoint, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _Transient("total time exhausted")
        t = self.timeouts
        timeout = httpx.Timeout(
            connect=min(t.connect_s, remaining), read=min(t.read_s, remaining),
            write=min(t.read_s, remaining), pool=min(t.connect_s, remaining),
        )
        headers = {"Content-Type": "application/json"}
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        payload = json.dumps(body).encode("ascii")  # ASCII escapes survive stray surrogates in documents
        try:
            with self._http.stream("POST", endpoint.url, content=payload, headers=headers, timeout=timeout) as resp:
                chunks = []
                for chunk in resp.iter_bytes():
                    chunks.append(chunk)
                    if self._clock() > deadline:
                        raise _Transient("total time exceeded while reading the answer")
                raw = b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise _Transient(f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        status = resp.status_code
        text = raw.decode("utf-8", "replace")
        if status == 429 or status == 408 or status >= 500:
            raise _Transient(f"HTTP {status}: {text[:300]}", _retry_after_header(resp))
        if status >= 400:
            if status in (400, 413, 422) and _CONTEXT_MSG.search(text):
                raise ContextOverflow(f"server: {text[:300]}")
            raise RequestRejected(f"HTTP {status} from {endpoint.url}: {text[:300]}")
        try:
            data = json.loads(text)
        except ValueError:
            raise _Transient(f"HTTP {status} with a body that is not JSON: {text[:200]!r}") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise _Transient(f"HTTP {status} without choices: {text[:200]!r}")
        return data

    def _record(
        self,
        call: _Call,
        endpoint: Endpoint,
        attempt: int,
        outcome: Outcome,
        started: float | None = None,
        usage: Usage | None = None,
        *,
        error: str | None = None,
    ) -> None:
        u = usage or Usage()
        latency = 0.0 if started is None else (self._clock() - started) * 1000.0
        log.info(
            "model call %s attempt %s: %s in %.0f ms (%d prompt + %d completion tokens)",
            call.stage, attempt, outcome, latency, u.prompt_tokens, u.completion_tokens,
            extra={"stage": call.stage, "outcome": outcome, "latency_ms": round(latency, 1)},
        )  # fmt: skip
        if self._metrics is not None:
            try:
                self._metrics.observe(call.stage, outcome, latency / 1000.0, u.prompt_tokens, u.completion_tokens)
                for ep, breaker in zip(self.endpoints, self.breakers, strict=True):
                    self._metrics.breaker_state(ep.base_url, breaker.state)
            except Exception:  # metrics must never break the call itself
                log.exception("model call metrics failed")
        if self._recorder is None:
            return
        record = CallRecord(
            stage=call.stage, model=endpoint.model, endpoint=endpoint.base_url, attempt=attempt,
            outcome=outcome, latency_ms=round(latency, 3), prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens, reasoning_tokens=u.reasoning_tokens,
            cached_tokens=u.cached_tokens, error=error, prompt_hash=call.prompt_hash,
            job_id=call.job_id, source_id=call.source_id,
        )
        try:
            self._recorder(record)
        except Exception:  # the ledger of calls must never break the call itself
            log.exception("model call recorder failed")
