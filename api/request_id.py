"""A request id for every HTTP request: taken from ``X-Request-ID`` when it is sane, else made up.

The id is bound as the ``request_id`` context variable for everything the request logs
(``structlog.contextvars``; :mod:`lore.logs` puts it on each line) and returned in the response's
``X-Request-ID`` header, so a client's report and the server's log lines meet.
"""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestIdMiddleware:
    """Pure ASGI middleware binding ``request_id`` for the request's duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == HEADER), "")
        request_id = sent if _SANE.fullmatch(sent) else uuid.uuid4().hex

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, request_id.encode())]}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, with_header)
