"""The wire format of OpenAI-compatible chat completions: endpoints, sampling, request bodies, usage.

Structured output is requested per server dialect:

- ``vllm``: ``structured_outputs: {"json": schema}`` (the name since vLLM 0.10; ``guided_json`` is gone);
- ``llamacpp``: ``response_format: {"type": "json_object", "schema": schema}``;
- ``openai``: ``response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``.

Thinking is switched through ``chat_template_kwargs.enable_thinking``, sent only to dialects whose
servers accept it (OpenAI's own API rejects unknown fields).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ValidationError

Dialect = Literal["vllm", "llamacpp", "openai"]
DEFAULT_LABELS: dict[str, str] = {"vllm": "vLLM", "llamacpp": "llama.cpp", "openai": "OpenAI-compatible"}
_TEMPLATE_KWARGS_DIALECTS = frozenset({"vllm", "llamacpp"})
_CODE_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI-compatible server. ``base_url`` ends in ``/v1``; ``label`` names the server kind."""

    base_url: str
    model: str
    api_key: str = ""
    dialect: Dialect = "llamacpp"
    label: str = ""

    def __post_init__(self) -> None:
        if self.dialect not in get_args(Dialect):
            raise ValueError(f"unknown dialect {self.dialect!r}; expected one of {get_args(Dialect)}")
        if not self.label:
            object.__setattr__(self, "label", DEFAULT_LABELS[self.dialect])

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


@dataclass(frozen=True)
class Sampling:
    """Explicit sampling; ``seed`` None is not sent."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = 7
    max_tokens: int = 2048


@dataclass(frozen=True)
class Timeouts:
    """``connect_s`` and ``read_s`` bound one attempt; ``total_s`` bounds a logical call with its retries."""

    connect_s: float = 5.0
    read_s: float = 300.0
    total_s: float = 900.0


@dataclass(frozen=True)
class Usage:
    """Token counts as the server reported them; ``cached_tokens`` None when it did not say."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int | None = None

    def __add__(self, other: Usage) -> Usage:
        cached = None
        if self.cached_tokens is not None or other.cached_tokens is not None:
            cached = (self.cached_tokens or 0) + (other.cached_tokens or 0)
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            cached,
        )


def hash_messages(messages: Sequence[dict[str, Any]]) -> str:
    """A stable sha256 of a message list (the ``prompt_hash`` of call records)."""
    canon = json.dumps(list(messages), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest()


def estimate_tokens(messages: Sequence[dict[str, Any]], tokenizer: Callable[[str], int] | None = None) -> int:
    """A conservative prompt size: ``chars / 3`` (or the tokenizer's count) plus per-message overhead.

    Args:
        messages: chat messages with string ``content``.
        tokenizer: optional callable returning the exact token count of a text.

    Returns:
        The estimated prompt tokens (real tokenizers give about 4 characters per token for English).
    """
    total = 8
    for m in messages:
        text = str(m.get("content") or "")
        total += 6 + (tokenizer(text) if tokenizer else -(-len(text) // 3))
    return total


@lru_cache(maxsize=64)
def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a response model (cached per class)."""
    return model.model_json_schema()


def build_payload(
    endpoint: Endpoint,
    messages: Sequence[dict[str, Any]],
    response_model: type[BaseModel],
    sampling: Sampling,
    *,
    thinking: bool = False,
) -> dict[str, Any]:
    """The request body for ``endpoint``'s dialect: sampling, structured output, thinking switch.

    Args:
        endpoint: where the body goes (its dialect and model name).
        messages: the chat messages.
        response_model: the answer's Pydantic model; its JSON schema constrains the output.
        sampling: temperature, top_p, seed and max_tokens, all sent explicitly.
        thinking: the value of ``enable_thinking`` for dialects that take it.
    """
    schema = schema_of(response_model)
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": list(messages),
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "stream": False,
    }
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if endpoint.dialect == "vllm":
        body["structured_outputs"] = {"json": schema}
    elif endpoint.dialect == "llamacpp":
        body["response_format"] = {"type": "json_object", "schema": schema}
    else:
        name = re.sub(r"[^A-Za-z0-9_-]", "_", response_model.__name__)[:64]
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
    if endpoint.dialect in _TEMPLATE_KWARGS_DIALECTS:
        body["chat_template_kwargs"] = {"enable_thinking": thinking}
    return body


def parse_usage(data: dict[str, Any]) -> Usage:
    """Token counts from a response body, tolerant of servers that omit parts of ``usage``."""
    u = data.get("usage")
    if not isinstance(u, dict):
        return Usage()

    def num(d: Any, key: str) -> int | None:
        v = d.get(key) if isinstance(d, dict) else None
        return int(v) if isinstance(v, int | float) else None

    return Usage(
        prompt_tokens=num(u, "prompt_tokens") or 0,
        completion_tokens=num(u, "completion_tokens") or 0,
        reasoning_tokens=num(u.get("completion_tokens_details"), "reasoning_tokens") or 0,
        cached_tokens=num(u.get("prompt_tokens_details"), "cached_tokens"),
    )


def first_choice(data: dict[str, Any]) -> tuple[str, str | None]:
    """``(content, finish_reason)`` of the first choice; content "" when the server sent none."""
    choice = data["choices"][0] if isinstance(data["choices"][0], dict) else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    finish = choice.get("finish_reason")
    return (content if isinstance(content, str) else ""), (finish if isinstance(finish, str) else None)


def parse_answer(model: type[M], content: str, context: dict[str, Any] | None = None) -> M:
    """Validate an answer's text against its response model (a surrounding code fence is tolerated).

    Raises:
        ValueError: the text is empty or not JSON.
        pydantic.ValidationError: the JSON does not match the model.
    """
    if not content.strip():
        raise ValueError("the answer is empty")
    m = _CODE_FENCE.match(content)
    try:
        data = json.loads(m.group(1) if m else content)
    except ValueError as exc:
        raise ValueError(f"the answer is not valid JSON ({exc})") from None
    return model.model_validate(data, context=context)


def describe_error(exc: Exception) -> str:
    """A short, model-readable account of why an answer was invalid (fed back in the repair call)."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_url=False)[:8]:
            loc = ".".join(str(p) for p in err["loc"]) or "(root)"
            parts.append(f"{loc}: {err['msg']}")
        return "; ".join(parts)
    return str(exc)
