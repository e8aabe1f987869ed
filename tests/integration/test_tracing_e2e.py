"""One OpenTelemetry trace from the gateway through Ray Serve into the vLLM engine.

The session's ``serve_stack`` exports Ray Serve's spans, the engine deployment's GenAI span
and vLLM's ``llm_request`` span to the in-process OTLP/HTTP receiver; the gateway started
here exports its spans there too. A chat request, streamed or not, is then one trace::

    POST /v1/chat/completions            gateway server span (child of the client's span)
    └── gateway.upstream
        └── POST                         the gateway's call to Ray Serve
            └── proxy_http_request       Ray Serve's proxy
                └── route_to_replica
                    └── replica_handle_request <ingress> __call__
                        └── route_to_replica
                            └── replica_handle_request <engine> chat
                                └── chat gemma-3-270m       GenAI span (serving.genai_span)
                                    └── llm_request         vLLM's engine span

No span and no log line (the gateway's, Ray's and the engine's) holds the prompt or the key.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.telemetry import spans
from serving.runner import LocalServing
from serving.tracing import SERVICE_NAME
from tests.gateway.tracing_support import captured_logs, log_lines
from tests.integration.conftest import TEXT_MODEL
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, delete_prefix

pytestmark = pytest.mark.integration

ADMIN = "admin-key-for-tracing-e2e"
GATEWAY_SERVICE = "gemma-gateway-tracing-e2e"
SERVE_SERVICE = SERVICE_NAME
CHAT = "/v1/chat/completions"
ENGINE_SPAN = "llm_request"
GENAI_SPAN = f"chat {TEXT_MODEL}"
#: A prompt no other test sends, so any trace of it in a span or a log is this test's.
PROMPT = "Name one colour of the vermilion-heron-5521 at dawn."


@pytest.fixture(scope="module")
def gateway_url(serve_stack: LocalServing, otlp_receiver: OtlpReceiver) -> Iterator[str]:
    """A gateway in front of the session's Serve app, exporting each span as it ends."""
    prefix = f"test-tracing-e2e-{uuid.uuid4().hex[:10]}:"
    settings = GatewaySettings.model_validate(
        {
            "upstream_url": re.sub(r"/v1/?$", "", serve_stack.base_url),
            "admin_key": ADMIN,
            "quota": {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 2.0},
        }
    )
    provider = TracerProvider(resource=Resource.create({"service.name": GATEWAY_SERVICE}))
    exporter = OTLPSpanExporter(endpoint=otlp_receiver.traces_url)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with serve_in_thread(create_app(settings, tracer_provider=provider)) as url:
            yield url
    finally:
        provider.shutdown()
        delete_prefix(prefix)


@pytest.fixture(scope="module")
def api_key(gateway_url: str) -> str:
    created = httpx.post(
        f"{gateway_url}/admin/keys",
        json={"tenant": "tracing-e2e"},
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def _client_parent() -> tuple[str, str]:
    """A fresh trace id and span id, as a traced client would send them."""
    return secrets.token_hex(16), secrets.token_hex(8)


def _chat(gateway_url: str, key: str, traceparent: str, *, stream: bool) -> dict[str, Any]:
    """One chat through the gateway; returns the usage the engine reported."""
    body: dict[str, Any] = {
        "model": TEXT_MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 8,
    }
    headers = {"authorization": f"Bearer {key}", "traceparent": traceparent}
    if not stream:
        response = httpx.post(f"{gateway_url}{CHAT}", json=body, headers=headers, timeout=300)
        assert response.status_code == 200, response.text
        return dict(response.json()["usage"])
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    usage = None
    with httpx.stream(
        "POST", f"{gateway_url}{CHAT}", json=body, headers=headers, timeout=300
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:]).get("usage"):
                usage = json.loads(line[6:])["usage"]
    assert usage is not None
    return dict(usage)


def _trace(receiver: OtlpReceiver, trace_id: str, client_span: str) -> list[ReceivedSpan]:
    """The spans of ``trace_id`` once every process has exported its part.

    Complete means: the gateway's server span, Ray Serve's proxy span, the GenAI span
    and the engine span are in, and every parent named is in the trace too, except the
    client's span (each process exports on its own schedule). A trace that never
    completes, such as one split in two, fails here.
    """

    def complete(received: list[ReceivedSpan]) -> bool:
        trace = [s for s in received if s.trace_id == trace_id]
        names = {s.name.split(" ")[0] for s in trace} | {s.name for s in trace}
        dangling = {s.parent_span_id for s in trace} - {s.span_id for s in trace}
        needed = {f"POST {CHAT}", "proxy_http_request", GENAI_SPAN, ENGINE_SPAN}
        return needed <= names and dangling == {client_span}

    received = receiver.wait_for(complete, timeout=60)
    return [s for s in received if s.trace_id == trace_id]


def _one(trace: list[ReceivedSpan], name: str, **attributes: Any) -> ReceivedSpan:
    found = [
        s
        for s in trace
        if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, (name, attributes, sorted(s.name for s in trace))
    return found[0]


def _parent(trace: list[ReceivedSpan], span: ReceivedSpan) -> ReceivedSpan:
    found = [s for s in trace if s.span_id == span.parent_span_id]
    assert len(found) == 1, (span.name, span.parent_span_id, sorted(s.name for s in trace))
    return found[0]


@pytest.mark.parametrize("stream", [False, True], ids=["response", "stream"])
def test_a_chat_is_one_trace_from_the_gateway_to_the_engine(
    gateway_url: str, api_key: str, otlp_receiver: OtlpReceiver, stream: bool
) -> None:
    trace_id, client_span = _client_parent()
    usage = _chat(gateway_url, api_key, f"00-{trace_id}-{client_span}-01", stream=stream)
    trace = _trace(otlp_receiver, trace_id, client_span)

    server = _one(trace, f"POST {CHAT}")
    assert server.parent_span_id == client_span  # the client's traceparent is honoured
    upstream = _one(trace, spans.UPSTREAM)
    assert upstream.parent_span_id == server.span_id
    call = _one(trace, "POST")
    assert call.parent_span_id == upstream.span_id
    assert {s.service for s in trace if s.name in (server.name, upstream.name, call.name)} == {
        GATEWAY_SERVICE
    }

    engine = _one(trace, ENGINE_SPAN)
    genai = _parent(trace, engine)
    assert genai.name == GENAI_SPAN
    serve = [_parent(trace, genai)]
    while serve[-1].parent_span_id != call.span_id:
        serve.append(_parent(trace, serve[-1]))
    assert [s.name.split(" ")[0] for s in serve] == [
        "replica_handle_request",  # the engine deployment's replica
        "route_to_replica",  # the ingress's handle call
        "replica_handle_request",  # the OpenAI ingress replica
        "route_to_replica",  # the proxy's handle call
        "proxy_http_request",  # the HTTP proxy, continuing the gateway's traceparent
    ]
    assert serve[0].attributes["call_method"] == "chat"
    assert serve[0].attributes["deployment"].endswith(TEXT_MODEL)
    assert serve[2].attributes["deployment"] == "GemmaIngress"
    assert {s.service for s in [*serve, genai, engine]} == {SERVE_SERVICE}

    for span in (server, genai):
        assert span.attributes["gen_ai.request.model"] == TEXT_MODEL
        assert span.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
        assert span.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert genai.attributes["gen_ai.request.stream"] is stream
    assert engine.attributes["gen_ai.usage.prompt_tokens"] == usage["prompt_tokens"]
    assert engine.attributes["gen_ai.usage.completion_tokens"] == usage["completion_tokens"]
    assert engine.attributes["gen_ai.latency.time_to_first_token"] > 0
    assert engine.attributes["gen_ai.latency.time_in_queue"] >= 0


def _ray_log_files() -> list[Path]:
    """Every log file of the running Ray session: driver, proxy, replicas, engines."""
    logs = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "session_latest" / "logs"
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert any(p.name.startswith("replica_") for p in files), logs  # Serve's own logs
    return files


def test_no_prompt_or_key_reaches_spans_or_logs(
    gateway_url: str, api_key: str, otlp_receiver: OtlpReceiver
) -> None:
    traces = [_client_parent() for _ in range(2)]
    with captured_logs() as logs:
        for (trace_id, client_span), stream in zip(traces, (False, True), strict=True):
            _chat(gateway_url, api_key, f"00-{trace_id}-{client_span}-01", stream=stream)
        received = [s for t, parent in traces for s in _trace(otlp_receiver, t, parent)]
    lines = log_lines(logs)
    access = {line["trace_id"] for line in lines if line["logger"] == "uvicorn.access"}
    assert {t for t, _ in traces} <= access  # the gateway logged both, with their trace ids
    assert {s.service for s in received} == {GATEWAY_SERVICE, SERVE_SERVICE}
    texts = [t for s in otlp_receiver.spans for t in s.texts()] + [json.dumps(x) for x in lines]
    for secret in (PROMPT, "vermilion-heron", api_key, api_key[-12:]):
        assert not [t for t in texts if secret in t], secret
    for path in _ray_log_files():
        content = path.read_bytes()
        for secret in (PROMPT, "vermilion-heron", api_key):
            assert secret.encode() not in content, (secret, path)


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` as a JSON object (a line that is not one fails the test)."""
    lines = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if line.strip():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pytest.fail(f"{path.name}:{number} is not JSON: {line[:200]}")
    return lines


def _replica_logs(deployment: str) -> list[dict[str, Any]]:
    """The JSON lines of the Serve replicas of ``deployment`` in the running Ray session."""
    files = [p for p in _ray_log_files() if p.name.startswith("replica_") and deployment in p.name]
    assert files, deployment
    return [line for path in files for line in _json_lines(path)]


#: vLLM's text log line (``INFO 11-23 17:30:00 [file.py:12] ...``), which JSON replaces.
VLLM_TEXT_LINE = re.compile(r"(DEBUG|INFO|WARNING|ERROR) \d\d-\d\d \d\d:\d\d:\d\d \[")


def test_serve_and_engine_logs_are_json_lines_with_the_trace_id(
    gateway_url: str, api_key: str, otlp_receiver: OtlpReceiver
) -> None:
    trace_id, client_span = _client_parent()
    _chat(gateway_url, api_key, f"00-{trace_id}-{client_span}-01", stream=False)
    _trace(otlp_receiver, trace_id, client_span)  # every replica has finished the request

    # The proxy's access line continues the gateway's traceparent.
    proxy = [
        line
        for path in _ray_log_files()
        if path.name.startswith("proxy_")
        for line in _json_lines(path)
    ]
    traced = [line for line in proxy if line.get("trace_id") == trace_id]
    assert traced, proxy[-3:]
    assert any(line["request_id"] and line.get("route") for line in traced), traced

    # Serve's access line of each replica the request crossed carries its trace id.
    for deployment in ("GemmaIngress", TEXT_MODEL):
        lines = _replica_logs(deployment)
        traced = [line for line in lines if line.get("trace_id") == trace_id]
        assert traced, (deployment, lines[-3:])
        assert all(line["request_id"] for line in traced)
        assert {"levelname", "message", "deployment", "replica"} <= set(traced[-1])

    # vLLM's own lines in the Serve replicas' processes (the engine's start-up, at least)
    # are JSON objects, none text. Ray writes each worker's actor name into its files.
    vllm_lines = []
    for path in _ray_log_files():
        if not path.name.startswith("worker-") or path.suffix not in (".out", ".err"):
            continue
        lines = path.read_text(errors="replace").splitlines()
        if not any(line.startswith(":actor_name:ServeReplica:") for line in lines[:3]):
            continue  # not the Serve application's (the Batch API's Ray Data stages, ...)
        for line in lines:
            assert not VLLM_TEXT_LINE.match(line), (path.name, line[:200])
            if line.startswith('{"time"') and '"logger": "vllm' in line:
                vllm_lines.append(json.loads(line))
    assert vllm_lines
    assert {"time", "level", "logger", "message", "trace_id"} <= set(vllm_lines[0])
