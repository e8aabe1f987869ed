"""Per-request metrics as a pure ASGI middleware, and the facts the handlers fill in.

``RequestMetricsMiddleware`` wraps every ``/v1/`` request: it puts a ``RequestFacts`` in
the request's state (``request.state.telemetry``; the request path writes which model
served it and with which capability), watches the response for its status and, for
event streams, its first body chunk, and counts the request when the answer is over,
however it ended. Operational endpoints (``/healthz``, ``/metrics``, ...) are not counted.
A request refused before routing (by the header or body checks) is counted under the
route its path matches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import NO_MODEL, GatewayMetrics

STATE_KEY = "telemetry"
COUNTED_PREFIX = "/v1/"


@dataclass
class RequestFacts:
    """What the request path learned: the serving model, the capability, the key's tenant
    and priority class."""

    model: str = NO_MODEL
    capability: str = NO_MODEL
    tenant: str = NO_MODEL
    priority_class: str = NO_MODEL


def request_facts(request: Request) -> RequestFacts:
    """The request's facts (a throwaway when the middleware is not installed)."""
    facts = request.scope.get("state", {}).get(STATE_KEY)
    return facts if isinstance(facts, RequestFacts) else RequestFacts()


def _route(scope: Scope) -> str:
    route = scope.get("route") or _matching_route(scope)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _matching_route(scope: Scope) -> object | None:
    """The app's route for the path, for a request answered before it was routed."""
    for route in getattr(getattr(scope.get("app"), "router", None), "routes", ()):
        if route.matches(scope)[0] is Match.FULL:
            return route
    return None


class RequestMetricsMiddleware:
    """Counts requests by route/model/capability/status; latency and time to first event."""

    def __init__(self, app: ASGIApp, *, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(COUNTED_PREFIX):
            await self.app(scope, receive, send)
            return
        facts = RequestFacts()
        scope.setdefault("state", {})[STATE_KEY] = facts
        watch = _ResponseWatch(send)
        try:
            await self.app(scope, receive, watch.send)
        finally:
            self._observe(scope, facts, watch)

    def _observe(self, scope: Scope, facts: RequestFacts, watch: _ResponseWatch) -> None:
        route = _route(scope)
        status = str(watch.status)
        self.metrics.requests.labels(route, facts.model, facts.capability, status).inc()
        self.metrics.tenant_requests.labels(facts.tenant, facts.model, status).inc()
        self.metrics.duration.labels(route, facts.model).observe(watch.elapsed())
        if watch.first_event is not None:
            ttft = self.metrics.time_to_first_token
            ttft.labels(route, facts.model, facts.priority_class).observe(
                watch.first_event - watch.started
            )


class _ResponseWatch:
    """Passes messages on, noting the status and when an event stream's first byte left."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = time.perf_counter()
        self.status = 500  # until a response starts: an error escaped the app
        self.streaming = False
        self.first_event: float | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.streaming = any(
                k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                for k, v in message.get("headers", [])
            )
        elif self.streaming and self.first_event is None and message.get("body"):
            self.first_event = time.perf_counter()
        await self._send(message)
