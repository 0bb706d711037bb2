"""Errors of the model boundary.

The tree::

    SynthError
     ├── ModelUnavailable      every endpoint is down, its breaker is open, or retries ran out
     │                         (transient: the job waits ``retry_after_s`` in the database and tries again)
     ├── ContextOverflow       the prompt does not fit the model's context (permanent, never retried)
     ├── OutputTruncated       the answer hit ``max_tokens`` (``finish_reason == "length"``)
     ├── InvalidAnswer         the answer is still invalid after the one repair call
     ├── RequestRejected       the server refused the request for another reason (4xx: bad key, unknown model)
     └── ExtractionRejected    the extraction is unusable (zero grounded claims is not this: the source
                               ends `done` with a warning); raised by flows, not by the client

Only ``ModelUnavailable`` is worth retrying later; every other error is a property of the request or the
document and would fail the same way again.
"""

from __future__ import annotations


class SynthError(Exception):
    """Base class of every error raised by the ``synth`` package."""


class ModelUnavailable(SynthError):
    """No model endpoint could answer now; try again after ``retry_after_s`` seconds.

    Attributes:
        retry_after_s: a hint for the caller (the job's ``next_attempt_at``), in seconds.
    """

    def __init__(self, message: str, *, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = max(0.0, float(retry_after_s))


class ContextOverflow(SynthError):
    """The prompt plus the answer budget exceed the model's context window. Never retried."""


class OutputTruncated(SynthError):
    """The server stopped at the token limit (``finish_reason == "length"``); the answer is incomplete."""


class InvalidAnswer(SynthError):
    """The answer did not match its response model, even after one repair call."""


class RequestRejected(SynthError):
    """The server refused the request (a 4xx other than 429 or context length); retrying cannot help."""


class ExtractionRejected(SynthError):
    """An extraction result is unusable, e.g. zero claims from a non-trivial source."""
