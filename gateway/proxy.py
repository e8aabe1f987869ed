"""One request's way through the gateway, from an authenticated key to the client's answer.

    authenticate -> capabilities allowed? -> route (candidates) -> models allowed?
    -> media checks -> [per candidate: admit -> send -> fallback on Unavailable]
    -> JSON answer (settle real usage) or SSE relay (renew while streaming, settle at the end)

Speech to text takes the same way: to vLLM's transcription endpoint for a variant with
the ``transcription`` capability, else as a chat completion (``gateway.speech``) whose
answer is reshaped after it is settled, so every answer is accounted here alike.

Every admitted request finishes its ticket exactly once: settle with the engine's
usage, or release when nothing was generated. A stream the client leaves is
cancelled upstream (so the engine stops) and settled with what was counted: the
last usage seen (streams ask for usage on every chunk), else the prompt estimate
plus one token per relayed chunk.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace

from gateway import auth
from gateway.dispatch import Dispatcher, Exchange, Send
from gateway.media.validator import MediaValidator
from gateway.metrics import GatewayMetrics
from gateway.model_info import ModelInfo
from gateway.quotas.protocol import ApiKey, KeyStore
from gateway.routing import Needs, Route, route
from gateway.settings import GatewaySettings
from gateway.speech import chat as speech
from gateway.speech.job import SpeechJob, by_endpoint, speech_route
from gateway.telemetry import spans
from gateway.telemetry.http_metrics import request_facts
from gateway.upstream import client as upstream
from gateway.upstream.registry import ModelRegistry
from gateway.upstream.response import RelayResponse
from gateway.upstream.sse import StreamTally, relay

SERVED_HEADER = "x-gemma-model"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
#: Turns a settled JSON body into the client's answer, given the response headers.
Reshape = Callable[[Any, Mapping[str, str]], Response]
#: Wraps a relayed stream's events (the tally sees the upstream events first).
Events = Callable[[AsyncGenerator[bytes, None], StreamTally], AsyncGenerator[bytes, None]]


@dataclass
class Upload:
    """A multipart audio request: the validated file and the other form fields."""

    filename: str
    content: bytes
    content_type: str
    fields: list[tuple[str, str]]


@dataclass
class Proxy:
    settings: GatewaySettings
    client: upstream.Upstream
    registry: ModelRegistry
    keys: KeyStore
    dispatcher: Dispatcher
    media: MediaValidator
    metrics: GatewayMetrics
    tracer: trace.Tracer = field(default_factory=trace.NoOpTracer)

    async def _admit_route(
        self, request: Request, requested: str, needs: Needs
    ) -> tuple[ApiKey, Route]:
        request_facts(request).capability = needs.primary
        trace.get_current_span().set_attribute(spans.REQUEST_MODEL, requested)
        with self.tracer.start_as_current_span(spans.AUTH) as span:
            key = await auth.authenticate(request, self.keys)
            span.set_attribute(spans.KEY_ID, key.key_id)
            auth.check_capabilities(key, needs.capabilities)
        attributes = {
            spans.REQUEST_MODEL: requested,
            spans.CAPABILITIES: sorted(needs.capabilities),
        }
        with self.tracer.start_as_current_span(spans.ROUTE, attributes=attributes) as span:
            found = route(
                requested,
                needs,
                self.registry.models,
                aliases=self.settings.aliases,
                unhealthy=self.registry.unhealthy(),
                fallback_named=self.settings.fallback_named_models,
            )
            allowed = set(auth.check_model(key, requested, (m.id for m in found.candidates)))
            candidates = tuple(m for m in found.candidates if m.id in allowed)
            span.set_attribute(spans.CANDIDATES, [m.id for m in candidates])
        return key, replace(found, candidates=candidates)

    async def _open(
        self, request: Request, found: Route, key: ApiKey, reserve: int, send: Send
    ) -> Exchange:
        exchange = await self.dispatcher.open(found, key, reserve=reserve, send=send)
        request_facts(request).model = exchange.model.id
        trace.get_current_span().set_attribute(spans.RESPONSE_MODEL, exchange.model.id)
        return exchange

    def _reserve(self, needs: Needs, n: int = 1) -> int:
        completion = needs.max_tokens or self.settings.quota.default_max_tokens
        return needs.prompt_tokens + completion * max(1, n)

    async def generate(
        self, request: Request, path: str, payload: dict[str, Any], needs: Needs
    ) -> Response:
        """``/v1/chat/completions`` and ``/v1/completions``: JSON or a relayed stream."""
        key, found = await self._admit_route(request, str(payload["model"]), needs)
        if self.settings.telemetry.record_content_hash:
            trace.get_current_span().set_attribute(spans.CONTENT_HASH, spans.content_hash(payload))
        if isinstance(payload.get("messages"), list):
            with self.tracer.start_as_current_span(spans.MEDIA):
                messages = await self.media.prepare_messages(payload["messages"])
            payload = {**payload, "messages": messages}
        stream = bool(payload.get("stream"))
        tally = StreamTally(include_usage=False)
        if stream:
            options = dict(payload.get("stream_options") or {})
            tally.include_usage = bool(options.get("include_usage"))
            tally.continuous_usage = bool(options.get("continuous_usage_stats"))
            metered = {**options, "include_usage": True, "continuous_usage_stats": True}
            payload = {**payload, "stream_options": metered}

        async def send(model: ModelInfo) -> aiohttp.ClientResponse:
            return await self.client.send("POST", path, json={**payload, "model": model.id})

        reserve = self._reserve(needs, int(payload.get("n") or 1))
        exchange = await self._open(request, found, key, reserve, send)
        if stream and exchange.response.status == 200:
            return self._relay(exchange, needs, tally)
        return await self._answer(exchange, needs)

    async def transcribe(
        self, request: Request, upload: Upload, requested: str, job: SpeechJob
    ) -> Response:
        """``/v1/audio/*``: the validated audio to vLLM's transcription endpoint or to chat.

        The endpoint gets ``upload``'s fields as multipart and its answer is passed on;
        chat gets ``job`` as a chat completion and its answer is reshaped (``gateway.speech``).
        """
        key, found = await self._admit_route(request, requested, job.needs)
        found = speech_route(found, job, self.registry.unhealthy())
        with self.tracer.start_as_current_span(spans.MEDIA):
            wav = await self.media.prepare_upload_async(upload.content, upload.filename)

        async def send(model: ModelInfo) -> aiohttp.ClientResponse:
            if not by_endpoint(model):
                return await self.client.send(
                    "POST", speech.CHAT_PATH, json=speech.chat_payload(job, wav, model.id)
                )
            form = aiohttp.FormData([(k, v) for k, v in upload.fields if k != "model"])
            form.add_field("model", model.id)
            form.add_field("file", wav, filename="audio.wav", content_type="audio/wav")
            return await self.client.send("POST", TRANSCRIPTIONS, data=form)

        exchange = await self._open(request, found, key, self._reserve(job.needs), send)
        if by_endpoint(exchange.model):
            return await self._answer(exchange, job.needs)
        if job.stream and exchange.response.status == 200:
            tally = StreamTally(include_usage=False)
            return self._relay(exchange, job.needs, tally, events=speech.transcript_events)
        reshape = functools.partial(speech.transcript_answer, job, speech.wav_duration(wav))
        return await self._answer(exchange, job.needs, reshape)

    def _headers(self, exchange: Exchange) -> dict[str, str]:
        return {**exchange.ticket.headers, SERVED_HEADER: exchange.model.id}

    async def _answer(
        self, exchange: Exchange, needs: Needs, reshape: Reshape | None = None
    ) -> Response:
        ticket, response = exchange.ticket, exchange.response
        try:
            async with ticket.renewing(self.settings.quota.lease_renew_interval):
                content = await upstream.read_body(response)
        except BaseException:
            await ticket.release()
            raise
        if response.status >= 400:
            if response.status >= 500:
                self.metrics.upstream_errors.labels(exchange.model.id, "status_5xx").inc()
            await ticket.release()
            status, error = upstream.error_payload(response.status, content)
            return JSONResponse(error, status_code=status, headers=self._headers(exchange))
        return await self._settled(exchange, needs, content, reshape)

    async def _settled(
        self, exchange: Exchange, needs: Needs, content: bytes, reshape: Reshape | None
    ) -> Response:
        response, headers = exchange.response, self._headers(exchange)
        media_type = response.headers.get("content-type", "text/plain")
        if not media_type.startswith("application/json"):
            await exchange.ticket.settle(needs.prompt_tokens + math.ceil(len(content) / 3))
            return Response(content, media_type=media_type, headers=headers)
        try:
            body = json.loads(content)
        except ValueError:
            await exchange.ticket.release()
            raise upstream.UpstreamError("The serving application sent invalid JSON.") from None
        await exchange.ticket.settle(_used_tokens(body, needs))
        usage = body.get("usage") if isinstance(body, dict) else None
        self._record_usage(exchange, usage if isinstance(usage, dict) else None)
        if reshape is not None:
            return reshape(body, headers)
        if isinstance(body, dict) and "model" in body:
            body["model"] = exchange.model.id
        return JSONResponse(body, headers=headers)

    def _record_usage(self, exchange: Exchange, usage: Mapping[str, Any] | None) -> None:
        self.metrics.observe_usage(exchange.model.id, usage)
        spans.record_usage(trace.get_current_span(), usage)

    def _relay(
        self,
        exchange: Exchange,
        needs: Needs,
        tally: StreamTally,
        events: Events | None = None,
    ) -> Response:
        served = exchange.model.id
        in_flight = self.metrics.streams_in_flight.labels(served)
        in_flight.inc()

        async def on_close(tally: StreamTally, client_gone: bool) -> None:
            in_flight.dec()
            if client_gone and not tally.done:
                self.metrics.client_disconnects.labels(served).inc()
            if tally.failed is not None:
                self.metrics.stream_errors.labels(served).inc()
                self.metrics.upstream_errors.labels(served, "stream").inc()
            self._record_usage(exchange, tally.usage)
            upstream.finish(exchange.response)
            if tally.chunks == 0 and tally.usage is None:
                await exchange.ticket.release()
            else:
                await exchange.ticket.settle(tally.used_tokens(needs.prompt_tokens))

        relayed = relay(exchange.response, tally)
        return RelayResponse(
            events(relayed, tally) if events is not None else relayed,
            tally,
            on_close=on_close,
            headers=self._headers(exchange),
            renewing=functools.partial(
                exchange.ticket.renewing, self.settings.quota.lease_renew_interval
            ),
        )


def _used_tokens(body: Any, needs: Needs) -> int:
    usage: Mapping[str, Any] = body.get("usage") or {} if isinstance(body, dict) else {}
    total = usage.get("total_tokens")
    return int(total) if isinstance(total, int) else needs.prompt_tokens
