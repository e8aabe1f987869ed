"""A pure-ASGI middleware receiving request bodies within their size, memory and time limits.

A declared ``Content-Length`` over ``max_body_bytes`` is refused with 413 before
anything is read; a body without one (chunked) is counted as it arrives and refused once
it passes the limit. The bytes are taken from the process's ``BodyBudget`` (a declared
length at once, else chunk by chunk; per client address too for a request without an
authenticated key, see ``gateway.header_auth``) and given back when the request ends:
past it, 503 or 429. A body later than its ``BodyDeadlines`` is a 408 that closes the
connection. Counted bodies are buffered (at most the limit) and replayed to the app.
Paths in ``exempt_paths`` (file uploads) bound and stream their bodies themselves,
within the same deadlines.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import auth
from gateway.body_budget import BodyBudget, Hold
from gateway.body_deadlines import BodyDeadlines
from gateway.errors import GatewayError, PayloadTooLarge
from gateway.http_errors import gateway_error_response
from gateway.settings import RequestLimits


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, limits: RequestLimits, exempt_paths: Collection[str] = ()
    ) -> None:
        self.app = app
        self.max_body_bytes = limits.max_body_bytes
        self.budget = BodyBudget(
            total=limits.body_bytes_in_flight, per_peer=limits.peer_body_bytes_in_flight
        )
        self.deadlines = BodyDeadlines(total=limits.body_timeout, stall=limits.body_stall_timeout)
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timed = self.deadlines.receive(receive)
        if scope["path"] in self.exempt_paths:
            await self.app(scope, timed, send)
            return
        with self.budget.hold(_unauthenticated_peer(scope)) as hold:
            try:
                messages = await self._read(scope, timed, hold)
            except GatewayError as exc:
                await gateway_error_response(exc)(scope, receive, send)
                return
            await self.app(scope, _replay(messages, receive), send)

    async def _read(self, scope: Scope, receive: Receive, hold: Hold) -> list[Message]:
        declared = _declared_length(scope)
        if declared is not None:
            self._check_size(declared)
            hold.take(declared)
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            chunk = len(message.get("body", b""))
            size += chunk
            self._check_size(size)
            if declared is None:
                hold.take(chunk)
            if not message.get("more_body", False):
                return messages

    def _check_size(self, size: int) -> None:
        if size > self.max_body_bytes:
            raise PayloadTooLarge(
                f"The request body is larger than {self.max_body_bytes} bytes.", param=None
            )


def _declared_length(scope: Scope) -> int | None:
    declared = dict(scope["headers"]).get(b"content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


def _unauthenticated_peer(scope: Scope) -> str | None:
    """The client's address when no key was authenticated for the request, else ``None``."""
    if auth.remembered(scope) is not None:
        return None
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
