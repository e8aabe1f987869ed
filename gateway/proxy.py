"""One request's way through the gateway, from an authenticated key to the client's answer.

    authenticate -> capabilities allowed? -> route (candidates) -> models allowed?
    -> media part counts -> [per candidate: admit -> media checks (once) -> send
    -> fallback on Unavailable]
    -> JSON answer (settle real usage) or SSE relay (renew while streaming, settle at the end)

Media is decoded only once a candidate has admitted the key (``Dispatcher.open``'s
``prepare``), so a key over its limits is refused before any decode; before admission
only part counts and upload sizes are checked. A media refusal after admission releases
the admission (no tokens charged) and answers the same 400 as before admission.

Speech to text takes the same way: to vLLM's transcription endpoint for a variant with
the ``transcription`` capability, else as a chat completion (``gateway.speech``) whose
answer is reshaped after it is settled, so every answer is accounted here alike.

What is reserved, the completion cap the engine is sent and what is settled are
``gateway.accounting``'s (every prompt, every choice, each at its cap).

Every admitted request finishes its ticket exactly once: settle with the engine's
usage, or release when nothing was generated. A variant whose engine is down is not
a candidate (503 with ``Retry-After`` when no candidate is left); each request kind
has its first-byte deadline. A request whose client leaves before its answer is
ready is cancelled upstream (``gateway.upstream.disconnect``) and charged its
reservation (``gateway.dispatch``). A stream the client leaves is
cancelled upstream (so the engine stops) and settled with what was counted: the
last usage seen (streams ask for usage on every chunk), else the prompt estimate
plus one token per relayed chunk.

Chat, completion and embeddings requests reach the engine with the priority of the key's class
(``gateway.priority``); vLLM's transcription endpoint has no priority field.

A guarded key's chat and completion prompts are screened once admitted, before the
engine sees them, and (``prompts_and_answers``) its answers before the client does,
streams included (``gateway.moderation.guard``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import anyio
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace

from gateway import accounting, auth, priority
from gateway.dispatch import Dispatcher, Exchange, Prepare, Send
from gateway.errors import ClientDisconnected, UpstreamUnavailable
from gateway.media.validator import MediaValidator
from gateway.metrics import GatewayMetrics
from gateway.model_info import ModelInfo
from gateway.moderation.guard import Guard
from gateway.quotas.protocol import ApiKey, KeyStore
from gateway.routing import Needs, Route, route
from gateway.settings import GatewaySettings
from gateway.speech import chat as speech
from gateway.speech.job import SpeechJob, by_endpoint, speech_route
from gateway.telemetry import spans
from gateway.telemetry.http_metrics import request_facts
from gateway.upstream import client as upstream
from gateway.upstream.disconnect import abandoned_on_disconnect
from gateway.upstream.fan_out import FanOut
from gateway.upstream.registry import ModelRegistry
from gateway.upstream.response import RelayResponse
from gateway.upstream.sse import StreamTally, relay, relay_reads

SERVED_HEADER = "x-gemma-model"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
#: The paths whose prompts and answers a guarded key has screened.
GUARDED_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
#: Turns a settled JSON body into the client's answer, given the response headers.
Reshape = Callable[[Any, Mapping[str, str]], Response]
#: Wraps a relayed stream's events (the tally sees the upstream events first).
Events = Callable[[AsyncGenerator[bytes, None], StreamTally], AsyncGenerator[bytes, None]]
#: The engine body for the model chosen (when it depends on the model).
BodyFor = Callable[[ModelInfo], Awaitable[dict[str, Any]]]
#: The engine bodies of a request sent as several (an image classifier's judgements), from
#: the model chosen and the request as prepared (its images checked and fetched).
BodiesFor = Callable[[ModelInfo, Mapping[str, Any]], Awaitable[list[dict[str, Any]]]]
#: Reads an answer's whole body.
Read = Callable[[aiohttp.ClientResponse], Awaitable[bytes]]
#: Looks at a settled JSON answer before the client gets it (may refuse it).
Inspect = Callable[[Any], Awaitable[None]]


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
    guard: Guard
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
            candidates = self._up(tuple(m for m in found.candidates if m.id in allowed))
            span.set_attribute(spans.CANDIDATES, [m.id for m in candidates])
        return key, replace(found, candidates=candidates)

    @asynccontextmanager
    async def _abandonable(self, request: Request) -> AsyncIterator[None]:
        """``abandoned_on_disconnect``, counting the clients that leave before an answer."""
        try:
            async with abandoned_on_disconnect(request.receive):
                yield
        except ClientDisconnected:
            waited_on = getattr(request.state, "trying", request_facts(request).model)
            self.metrics.client_disconnects.labels(waited_on).inc()
            raise

    def _up(self, candidates: tuple[ModelInfo, ...]) -> tuple[ModelInfo, ...]:
        """The candidates whose engine is up; 503 when every one is down."""
        down = self.registry.down()
        up = tuple(m for m in candidates if m.id not in down)
        if candidates and not up:
            reasons = "; ".join(f"{m.id}: {down[m.id]}" for m in candidates)
            raise UpstreamUnavailable(
                f"The model's engine is down or restarting ({reasons}).",
                headers={"retry-after": str(self.settings.upstream_retry_after)},
            )
        return up

    async def _open(
        self,
        request: Request,
        found: Route,
        key: ApiKey,
        reserve: int,
        send: Send,
        *,
        prepare: Prepare,
        stream: bool = False,
    ) -> Exchange:
        first_byte = (
            self.settings.upstream_stream_first_byte_timeout
            if stream
            else self.settings.upstream_first_byte_timeout
        )

        async def trying(model: ModelInfo) -> aiohttp.ClientResponse:
            request.state.trying = model.id  # the model a client that leaves was waiting on
            return await send(model)

        exchange = await self.dispatcher.open(
            found, key, reserve=reserve, send=trying, first_byte=first_byte, prepare=prepare
        )
        request_facts(request).model = exchange.model.id
        trace.get_current_span().set_attribute(spans.RESPONSE_MODEL, exchange.model.id)
        return exchange

    async def generate(
        self,
        request: Request,
        path: str,
        payload: dict[str, Any],
        needs: Needs,
        *,
        reshape: Reshape | None = None,
        events: Events | None = None,
        body_for: BodyFor | None = None,
        bodies_for: BodiesFor | None = None,
    ) -> Response:
        """``/v1/chat/completions``, ``/v1/completions`` (JSON or a relayed stream) and
        ``/v1/embeddings`` (JSON); ``reshape`` and ``events`` turn a chat answer into another
        API's (``/v1/responses``, ``/v1/moderations``); ``body_for`` writes the engine body
        for the model chosen (``/v1/moderations``: its label tokens), ``bodies_for`` several,
        sent together and answered as one (``gateway.upstream.fan_out``; JSON only)."""
        key, found = await self._admit_route(request, str(payload["model"]), needs)
        guarded = path in GUARDED_PATHS and body_for is None and bodies_for is None
        if self.settings.telemetry.record_content_hash:
            trace.get_current_span().set_attribute(spans.CONTENT_HASH, spans.content_hash(payload))
        messages = payload.get("messages")
        if isinstance(messages, list):
            self.media.check_counts(messages)
        stream = bool(payload.get("stream"))
        payload, tally = _metered(payload)
        cap = accounting.budget(path, needs, self.settings.quota.default_max_tokens)
        payload = dict(payload)  # prepare() puts the checked messages in
        prepare = self._preparer(key, payload, guarded=guarded)

        fan_out = FanOut()

        async def send(model: ModelInfo) -> aiohttp.ClientResponse:
            def engine_body(body: Mapping[str, Any]) -> dict[str, Any]:
                body = accounting.engine_payload(body, needs, cap, model)
                return priority.with_priority({**body, "model": model.id}, key.priority_class)

            if bodies_for is not None:
                bodies = [engine_body(b) for b in await bodies_for(model, payload)]
                return await fan_out.send(self.client, path, bodies)
            body = payload if body_for is None else await body_for(model)
            return await self.client.send("POST", path, json=engine_body(body))

        async def inspect(answer: Any) -> None:
            with self.tracer.start_as_current_span(spans.GUARD):
                await self.guard.check_answer(key, payload, answer)

        screens_answers = guarded and key.guard.screens_answers
        reserve = accounting.reservation(needs, cap)
        async with self._abandonable(request):
            exchange = await self._open(
                request, found, key, reserve, send, prepare=prepare, stream=stream
            )
            if not stream or exchange.response.status != 200:
                return await self._answer(
                    exchange, needs, reshape, inspect if screens_answers else None, fan_out.read
                )
        if screens_answers:
            events = self._screened(key, payload, events)
        return self._relay(exchange, needs, tally, events)

    def _preparer(self, key: ApiKey, payload: dict[str, Any], *, guarded: bool) -> Prepare:
        """The guard's prompt check, then the media checked and fetched into ``payload``."""
        messages = payload.get("messages")

        async def prepare() -> None:
            if guarded:
                with self.tracer.start_as_current_span(spans.GUARD):
                    await self.guard.check_prompt(key, payload)
            if isinstance(messages, list):
                with self.tracer.start_as_current_span(spans.MEDIA):
                    payload["messages"] = await self.media.prepare_messages(messages)

        return prepare

    def _screened(self, key: ApiKey, payload: Mapping[str, Any], events: Events | None) -> Events:
        """``events`` (or the plain relay) seeing only what the guard let through."""

        def wrapped(
            relayed: AsyncGenerator[bytes, None], tally: StreamTally
        ) -> AsyncGenerator[bytes, None]:
            screened = self.guard.screened(key, payload, relayed)
            return events(screened, tally) if events is not None else screened

        return wrapped

    async def transcribe(
        self, request: Request, upload: Upload, requested: str, job: SpeechJob
    ) -> Response:
        """``/v1/audio/*``: the validated audio to vLLM's transcription endpoint or to chat.

        The endpoint gets ``upload``'s fields as multipart and its answer is passed on;
        chat gets ``job`` as a chat completion and its answer is reshaped (``gateway.speech``).
        """
        key, found = await self._admit_route(request, requested, job.needs)
        found = speech_route(found, job, self.registry.unhealthy())
        self.media.check_upload(upload.content)
        cap = accounting.budget(speech.CHAT_PATH, job.needs, self.settings.quota.default_max_tokens)
        wav = b""

        async def prepare() -> None:
            nonlocal wav
            with self.tracer.start_as_current_span(spans.MEDIA):
                wav = await self.media.prepare_upload_async(upload.content, upload.filename)

        async def send(model: ModelInfo) -> aiohttp.ClientResponse:
            if not by_endpoint(model):
                chat = speech.chat_payload(job, wav, model.id)
                body = accounting.engine_payload(chat, job.needs, cap, model)
                body = priority.with_priority(body, key.priority_class)
                return await self.client.send("POST", speech.CHAT_PATH, json=body)
            form = aiohttp.FormData([(k, v) for k, v in upload.fields if k != "model"])
            form.add_field("model", model.id)
            form.add_field("file", wav, filename="audio.wav", content_type="audio/wav")
            return await self.client.send("POST", TRANSCRIPTIONS, data=form)

        reserve = accounting.reservation(job.needs, cap)
        async with self._abandonable(request):
            exchange = await self._open(
                request, found, key, reserve, send, prepare=prepare, stream=job.stream
            )
            if by_endpoint(exchange.model):
                return await self._answer(exchange, job.needs)
            if not job.stream or exchange.response.status != 200:
                reshape = functools.partial(speech.transcript_answer, job, speech.wav_duration(wav))
                return await self._answer(exchange, job.needs, reshape)
        tally = StreamTally(include_usage=False)
        return self._relay(exchange, job.needs, tally, events=speech.transcript_events)

    def _headers(self, exchange: Exchange) -> dict[str, str]:
        return {**exchange.ticket.headers, SERVED_HEADER: exchange.model.id}

    async def _answer(
        self,
        exchange: Exchange,
        needs: Needs,
        reshape: Reshape | None = None,
        inspect: Inspect | None = None,
        read: Read = upstream.read_body,
    ) -> Response:
        ticket, response = exchange.ticket, exchange.response
        try:
            async with ticket.renewing(self.settings.quota.lease_renew_interval):
                content = await read(response)
        except anyio.get_cancelled_exc_class():
            await ticket.settle(ticket.admission.reserved_tokens)  # abandoned mid-answer
            raise
        except BaseException:
            await ticket.release()
            raise
        if response.status >= 400:
            if response.status >= 500:
                self.metrics.upstream_errors.labels(exchange.model.id, "status_5xx").inc()
            await ticket.release()
            status, error = upstream.error_payload(response.status, content)
            return JSONResponse(error, status_code=status, headers=self._headers(exchange))
        return await self._settled(exchange, needs, content, reshape, inspect)

    async def _settled(
        self,
        exchange: Exchange,
        needs: Needs,
        content: bytes,
        reshape: Reshape | None,
        inspect: Inspect | None = None,
    ) -> Response:
        response, headers = exchange.response, self._headers(exchange)
        media_type = response.headers.get("content-type", "text/plain")
        if not media_type.startswith("application/json"):
            await exchange.ticket.settle(accounting.text_tokens_used(content, needs))
            return Response(content, media_type=media_type, headers=headers)
        try:
            body = json.loads(content)
        except ValueError:
            await exchange.ticket.release()
            raise upstream.UpstreamError("The serving application sent invalid JSON.") from None
        await exchange.ticket.settle(accounting.answered_tokens(body, needs))
        usage = body.get("usage") if isinstance(body, dict) else None
        self._record_usage(exchange, usage if isinstance(usage, dict) else None)
        if inspect is not None:
            await inspect(body)
        if reshape is not None:
            return reshape(body, headers)
        if isinstance(body, dict) and "model" in body:
            body["model"] = exchange.model.id
        return JSONResponse(body, headers=headers)

    def _record_usage(self, exchange: Exchange, usage: Mapping[str, Any] | None) -> None:
        self.metrics.observe_usage(exchange.model.id, usage, exchange.tenant)
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
                await exchange.ticket.settle(
                    accounting.streamed_tokens(tally.usage, tally.chunks, needs)
                )

        if events is None:  # the client gets each upstream read's events in one write
            relayed = relay_reads(exchange.response, tally)
        else:
            relayed = events(relay(exchange.response, tally), tally)
        return RelayResponse(
            relayed,
            tally,
            on_close=on_close,
            headers=self._headers(exchange),
            renewing=functools.partial(
                exchange.ticket.renewing, self.settings.quota.lease_renew_interval
            ),
        )


def _metered(payload: dict[str, Any]) -> tuple[dict[str, Any], StreamTally]:
    """A stream's payload asking the engine for usage on every chunk, and its tally."""
    tally = StreamTally(include_usage=False)
    if not payload.get("stream"):
        return payload, tally
    options = dict(payload.get("stream_options") or {})
    tally.include_usage = bool(options.get("include_usage"))
    tally.continuous_usage = bool(options.get("continuous_usage_stats"))
    metered = {**options, "include_usage": True, "continuous_usage_stats": True}
    return {**payload, "stream_options": metered}, tally
