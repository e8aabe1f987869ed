"""One trace per request: server span, the gateway's steps, the upstream call, over OTLP/HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.app import create_app
from gateway.auth import OpenGate
from gateway.telemetry import spans
from tests.gateway.conftest import gateway_settings
from tests.gateway.tracing_support import (
    SECRET,
    SERVICE,
    Keys,
    captured_logs,
    log_lines,
    one,
    otlp_provider,
    server_span_done,
)
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.servers import serve_in_thread
from tests.support.stub_upstream import TEXT_MODEL, VISION_MODEL, StubUpstream

PROMPT = "tell me about the purple-octopus-7731 secret recipe"
CHAT = "/v1/chat/completions"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def _serve(stub: StubUpstream, receiver: OtlpReceiver, **settings: object) -> Iterator[str]:
    provider = otlp_provider(receiver)
    config = gateway_settings(stub.base_url, quota={"enabled": True}, **settings)
    app = create_app(config, key_store=Keys(), quota_gate=OpenGate(), tracer_provider=provider)
    try:
        with serve_in_thread(app) as url:
            yield url
    finally:
        provider.shutdown()


@pytest.fixture
def client(stub: StubUpstream, receiver: OtlpReceiver) -> Iterator[httpx.Client]:
    for url in _serve(stub, receiver):
        with httpx.Client(base_url=url, timeout=30, headers=_auth()) as http:
            yield http


def _auth() -> dict[str, str]:
    return {"authorization": f"Bearer {SECRET}"}


def _chat(**extra: object) -> dict[str, object]:
    return {"model": TEXT_MODEL, "messages": [{"role": "user", "content": PROMPT}], **extra}


def _request_spans(receiver: OtlpReceiver, path: str = CHAT) -> list[ReceivedSpan]:
    received = receiver.wait_for(server_span_done(path))
    server = one(received, f"POST {path}")
    return [s for s in received if s.trace_id == server.trace_id]


def _assert_tree(trace: list[ReceivedSpan], stub: StubUpstream) -> ReceivedSpan:
    """The gateway's span tree of one request; returns the server span."""
    server = one(trace, f"POST {CHAT}")
    upstream = one(trace, spans.UPSTREAM)
    for name in (spans.AUTH, spans.ROUTE, spans.UPSTREAM, spans.QUOTA_SETTLE):
        assert one(trace, name).parent_span_id == server.span_id, name
    for name in (spans.QUOTA_ADMIT, spans.MEDIA):  # media is checked once admitted
        assert one(trace, name).parent_span_id == upstream.span_id, name
    http_call = one(trace, "POST")
    assert http_call.parent_span_id == upstream.span_id
    assert {s.service for s in trace} == {SERVICE}
    assert stub.headers[-1]["traceparent"].startswith(f"00-{server.trace_id}-{http_call.span_id}-")
    return server


def test_a_request_is_one_trace_with_its_steps_as_children(
    client: httpx.Client, stub: StubUpstream, receiver: OtlpReceiver
) -> None:
    assert client.post(CHAT, json=_chat()).status_code == 200
    trace = _request_spans(receiver)
    server = _assert_tree(trace, stub)
    assert server.parent_span_id is None
    assert server.attributes[spans.REQUEST_MODEL] == TEXT_MODEL
    assert server.attributes[spans.RESPONSE_MODEL] == TEXT_MODEL
    assert server.attributes[spans.INPUT_TOKENS] == 7
    assert server.attributes[spans.OUTPUT_TOKENS] == 5
    assert spans.CONTENT_HASH not in server.attributes
    route = one(trace, spans.ROUTE)
    assert route.attributes[spans.CAPABILITIES] == ["text"]
    assert route.attributes[spans.CANDIDATES] == [TEXT_MODEL]
    upstream = one(trace, spans.UPSTREAM)
    assert upstream.attributes[spans.CHOSEN] == TEXT_MODEL
    assert upstream.attributes[spans.FALLBACK] is False
    assert one(trace, spans.QUOTA_SETTLE).attributes[spans.QUOTA_TOKENS] == 12


def test_an_incoming_traceparent_is_honoured(
    client: httpx.Client, stub: StubUpstream, receiver: OtlpReceiver
) -> None:
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    response = client.post(CHAT, json=_chat(), headers={"traceparent": traceparent})
    assert response.status_code == 200
    trace = _request_spans(receiver)
    server = _assert_tree(trace, stub)
    assert server.trace_id == CLIENT_TRACE
    assert server.parent_span_id == CLIENT_SPAN
    assert stub.headers[-1]["traceparent"].startswith(f"00-{CLIENT_TRACE}-")


def test_a_stream_is_one_trace_settled_inside_the_request_span(
    client: httpx.Client, stub: StubUpstream, receiver: OtlpReceiver
) -> None:
    with client.stream("POST", CHAT, json=_chat(stream=True)) as response:
        assert response.status_code == 200
        body = response.read().decode()
    assert body.rstrip().endswith("data: [DONE]")
    trace = _request_spans(receiver)
    server = _assert_tree(trace, stub)
    assert server.attributes[spans.INPUT_TOKENS] == 7
    assert server.attributes[spans.OUTPUT_TOKENS] == 5


def test_fallback_is_recorded_on_the_upstream_span(
    client: httpx.Client, stub: StubUpstream, receiver: OtlpReceiver
) -> None:
    stub.knobs.unavailable = {TEXT_MODEL}
    response = client.post(CHAT, json={**_chat(), "model": "auto"})
    assert response.status_code == 200
    trace = _request_spans(receiver)
    upstream = one(trace, spans.UPSTREAM)
    assert upstream.attributes[spans.FALLBACK] is True
    assert upstream.attributes[spans.FAILED] == [TEXT_MODEL]
    assert upstream.attributes[spans.CHOSEN] == VISION_MODEL
    admits = [s for s in trace if s.name == spans.QUOTA_ADMIT]
    calls = [s for s in trace if s.name == "POST"]
    assert len(admits) == len(calls) == 2
    assert {s.parent_span_id for s in admits + calls} == {upstream.span_id}
    assert one(trace, spans.QUOTA_RELEASE).attributes[spans.RESPONSE_MODEL] == TEXT_MODEL


def test_no_prompt_or_key_reaches_spans_or_logs(
    client: httpx.Client, stub: StubUpstream, receiver: OtlpReceiver
) -> None:
    with captured_logs() as logs:
        assert client.post(CHAT, json=_chat()).status_code == 200
        with client.stream("POST", CHAT, json=_chat(stream=True)) as response:
            response.read()
        stub.knobs.unavailable = {TEXT_MODEL}
        assert client.post(CHAT, json=_chat()).status_code == 503  # logged as a warning
        assert (
            client.post(CHAT, json=_chat(), headers={"authorization": "Bearer nope"}).status_code
            == 401
        )
        received = receiver.wait_for(server_span_done(CHAT, count=4))
    lines = log_lines(logs)
    assert any(line["logger"] == "gateway.http_errors" for line in lines)
    assert any(line["logger"] == "uvicorn.access" for line in lines)
    server_traces = {s.trace_id for s in received if s.name == f"POST {CHAT}"}
    assert len(server_traces) == 4
    for line in lines:  # the untraced stub upstream logs through uvicorn.access too
        if line["logger"] != "uvicorn.access" or line["trace_id"] is not None:
            assert line["trace_id"] in server_traces, line
    access = [line["trace_id"] for line in lines if line["logger"] == "uvicorn.access"]
    assert server_traces <= set(access)
    texts = [t for s in received for t in s.texts()] + [str(line) for line in lines]
    for secret in (PROMPT, "purple-octopus", SECRET, "nope"):
        assert not [t for t in texts if secret in t], secret


def test_a_content_hash_is_recorded_only_when_enabled(
    stub: StubUpstream, receiver: OtlpReceiver
) -> None:
    payload = _chat()
    for url in _serve(stub, receiver, telemetry={"record_content_hash": True}):
        response = httpx.post(url + CHAT, json=payload, headers=_auth(), timeout=30)
        assert response.status_code == 200
    server = one(_request_spans(receiver), f"POST {CHAT}")
    assert server.attributes[spans.CONTENT_HASH] == spans.content_hash(payload)
    assert len(server.attributes[spans.CONTENT_HASH]) == 64
