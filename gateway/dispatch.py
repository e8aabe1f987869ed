"""Sending one routed request: admission, fallback across candidates, health marks, metrics.

For each candidate in the route's order: admit the key for that model (the quota
counts the model that serves), send, and on ``Unavailable`` (refused connection,
503, no first byte within the request kind's deadline, or the model went down while
the request waited: ``ModelRegistry.watching``) release the admission, mark the model
unhealthy, count a fallback and try the next one. The first model that answers is
returned with its ``Ticket``; when none can, the client gets a 503 with ``Retry-After``.

Once admitted and prepared, the request takes a slot on the model's engine
(``gateway.fair_share``: at once, or after waiting its turn when every slot is taken);
the ticket holds the slot until it is settled or released.

Between the first admission and the first send, ``prepare`` runs once (the proxy decodes
the request's media there): a key over its quota is refused before any of that work, and
whatever ends ``prepare`` early (a media refusal, a cancel) releases the admission, since
nothing was sent. It runs outside the first-byte deadline, which is the engine's.

A request cancelled while it waits (its client left, or the gateway is stopping)
closes its upstream connection, which makes the serving application abort the
generation; only then is its ticket settled, with the reservation: the engine may have
generated up to the cap it was given, and no usage comes back from an aborted request.
A failed answer (an error, a 5xx) asks the registry to poll the upstream's health now.

All of it runs in one ``gateway.upstream`` span: a ``gateway.quota.admit`` span and
the HTTP client span per candidate tried, ``prepare``'s spans after the first admission,
the chosen model and whether it was a fallback as attributes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import anyio
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from gateway.errors import (
    QuotaBackendUnavailable,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.fair_share import FairShare, unbounded
from gateway.metrics import NO_MODEL, GatewayMetrics
from gateway.model_info import ModelInfo
from gateway.quotas.protocol import Admission, ApiKey, QuotaGate
from gateway.routing import Route
from gateway.telemetry import spans
from gateway.ticket import Ticket
from gateway.upstream.client import Unavailable
from gateway.upstream.registry import ModelRegistry

Send = Callable[[ModelInfo], Awaitable[aiohttp.ClientResponse]]
#: Readies the request once it holds its first admission (decodes its media); may refuse it.
Prepare = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


def _once(prepare: Prepare) -> Prepare:
    """``prepare`` on the first call; later candidates (fallback) find the request ready."""
    done = False

    async def run() -> None:
        nonlocal done
        if not done:
            await prepare()
            done = True

    return run


@dataclass
class Exchange:
    """An upstream answer (body not read yet), who served it, and its quota ticket."""

    model: ModelInfo
    response: aiohttp.ClientResponse
    ticket: Ticket
    tenant: str = NO_MODEL


@dataclass
class Dispatcher:
    registry: ModelRegistry
    gate: QuotaGate
    metrics: GatewayMetrics
    quota_timeout: float
    renew_interval: float
    retry_after: int = 5
    tracer: trace.Tracer = field(default_factory=trace.NoOpTracer)
    fair_share: FairShare = field(default_factory=unbounded)

    async def _admit(self, model: ModelInfo, key: ApiKey, reserve: int) -> Admission:
        attributes: dict[str, AttributeValue] = {
            spans.RESPONSE_MODEL: model.id,
            "gateway.quota.reserved_tokens": reserve,
        }
        with self.tracer.start_as_current_span(spans.QUOTA_ADMIT, attributes=attributes):
            try:
                return await self.gate.admit(key, model.id, reserve)
            except RateLimited as exc:
                self.metrics.quota_rejections.labels(exc.code or "rate_limited").inc()
                raise
            except QuotaBackendUnavailable:
                self.metrics.quota_rejections.labels("backend_unavailable").inc()
                raise

    async def _try(
        self,
        model: ModelInfo,
        key: ApiKey,
        reserve: int,
        send: Send,
        first_byte: float,
        prepare: Prepare,
    ) -> Exchange:
        admission = await self._admit(model, key, reserve)
        ticket = Ticket(self.gate, admission, timeout=self.quota_timeout, tracer=self.tracer)
        await self._prepare(ticket, prepare)
        await self._take_slot(ticket, model, key)
        try:
            async with ticket.renewing(self.renew_interval):
                response = await self._send(model, send, first_byte)
        except anyio.get_cancelled_exc_class():
            await ticket.settle(reserve)  # abandoned: the upstream call is closed by now
            raise
        except BaseException as exc:
            self._count_failure(model, exc)
            await ticket.release()
            raise
        if response.status >= 500:
            self.registry.poke()
        return Exchange(model, response, ticket, key.tenant)

    async def _prepare(self, ticket: Ticket, prepare: Prepare) -> None:
        """``prepare`` under the admission; whatever ends it early releases the admission."""
        try:
            async with ticket.renewing(self.renew_interval):
                await prepare()
        except BaseException:
            await ticket.release()  # nothing was sent: a refusal or a cancel costs no tokens
            raise

    async def _take_slot(self, ticket: Ticket, model: ModelInfo, key: ApiKey) -> None:
        """A slot on the model's engine for the ticket; whatever ends the wait releases it."""
        engine = model.base_model_id or model.id  # an adapter runs on its base's engine
        share = (engine, key.tenant, key.priority_class, key.weight)
        started = time.perf_counter()
        ticket.slot = self.fair_share.take_now(*share)
        if ticket.slot is None:  # every slot taken: wait for a turn (a span of its own)
            try:
                with self.tracer.start_as_current_span(spans.FAIR_SHARE):
                    async with ticket.renewing(self.renew_interval):
                        ticket.slot = await self.fair_share.acquire(*share)
            except BaseException:
                await ticket.release()
                raise
        waited = time.perf_counter() - started
        self.metrics.queue_time.labels(engine, key.priority_class.value).observe(waited)

    async def _send(
        self, model: ModelInfo, send: Send, first_byte: float
    ) -> aiohttp.ClientResponse:
        """``send``, given up when the model goes down or no answer begins by ``first_byte``."""
        with (
            anyio.CancelScope(deadline=anyio.current_time() + first_byte) as scope,
            self.registry.watching(model.id, scope),
        ):
            return await send(model)
        if model.id in self.registry.down():
            raise Unavailable(f"{model.id} went down: {self.registry.down()[model.id]}")
        raise Unavailable(f"{model.id} sent no answer within {first_byte:g}s")

    def _count_failure(self, model: ModelInfo, exc: BaseException) -> None:
        kind = {Unavailable: "unavailable", UpstreamTimeout: "timeout", UpstreamError: "error"}
        for error_type, name in kind.items():
            if isinstance(exc, error_type):
                self.metrics.upstream_errors.labels(model.id, name).inc()
                self.registry.poke()
                return

    async def open(
        self,
        route: Route,
        key: ApiKey,
        *,
        reserve: int,
        send: Send,
        first_byte: float,
        prepare: Prepare = _nothing,
    ) -> Exchange:
        """The first candidate's answer; ``first_byte`` bounds each candidate's wait.

        ``prepare`` runs once, after the first admission and before the first send.
        """
        with self.tracer.start_as_current_span(spans.UPSTREAM) as span:
            exchange = await self._open(route, key, reserve, send, first_byte, _once(prepare), span)
        return exchange

    async def _open(
        self,
        route: Route,
        key: ApiKey,
        reserve: int,
        send: Send,
        first_byte: float,
        prepare: Prepare,
        span: trace.Span,
    ) -> Exchange:
        failed: list[str] = []
        for model in route.candidates:
            try:
                exchange = await self._try(model, key, reserve, send, first_byte, prepare)
            except Unavailable:
                self.registry.mark_unhealthy(model.id)
                self.metrics.fallbacks.labels(route.requested, model.id).inc()
                failed.append(model.id)
                continue
            self.registry.mark_healthy(model.id)
            self.metrics.routed.labels(route.requested, model.id, route.needs.primary).inc()
            outcome: dict[str, AttributeValue] = {
                spans.CHOSEN: model.id,
                spans.FALLBACK: bool(failed),
                spans.FAILED: failed,
            }
            span.set_attributes(outcome)
            return exchange
        span.set_attributes({spans.FALLBACK: bool(failed), spans.FAILED: failed})
        span.set_status(Status(StatusCode.ERROR, "no model could take the request"))
        raise UpstreamUnavailable(
            f"No model could take the request right now (tried: {', '.join(failed)}).",
            headers={"retry-after": str(self.retry_after)},
        )
