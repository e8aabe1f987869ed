"""The GenAI span of one engine call, and the trace context handed on to vLLM.

Ray Serve LLM passes the client's HTTP headers to vLLM's OpenAI serving classes as the
raw request (``RawRequestInfo``); vLLM parents its ``llm_request`` span on the
``traceparent`` found there. ``traced_call`` opens a span for the call, rewrites that
header to point at it, and ends the span when the answer (a response or a stream) is
over, recording the usage the engine reported. Only counts and names are recorded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from ray.llm._internal.serve.core.protocol import RawRequestInfo

TRACER_NAME = "serving"
TRACE_HEADERS = ("traceparent", "tracestate")
Call = Callable[[Any, RawRequestInfo], Awaitable[AsyncGenerator[Any, None]]]


def with_trace_context(info: RawRequestInfo | None, span: trace.Span) -> RawRequestInfo:
    """``info`` whose trace headers name ``span`` as the parent."""
    headers = {k: v for k, v in (info.headers if info else {}).items() if k not in TRACE_HEADERS}
    TraceContextTextMapPropagator().inject(headers, context=trace.set_span_in_context(span))
    return dataclasses.replace(info, headers=headers) if info else RawRequestInfo(headers=headers)


def usage_of(item: Any) -> dict[str, Any] | None:
    """The usage carried by a response object or a batch of ``data: {...}`` stream events."""
    usage = getattr(item, "usage", None)
    if usage is not None:
        return usage.model_dump() if hasattr(usage, "model_dump") else dict(usage)
    found = None
    for event in item if isinstance(item, list) else [item]:
        if not isinstance(event, str) or not event.startswith("data: {"):
            continue
        try:
            data = json.loads(event[len("data: ") :])
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("usage"), dict):
            found = data["usage"]
    return found


def _record(span: trace.Span, usage: dict[str, Any] | None) -> None:
    if not usage:
        return
    for attribute, field in (
        ("gen_ai.usage.input_tokens", "prompt_tokens"),
        ("gen_ai.usage.output_tokens", "completion_tokens"),
    ):
        if isinstance(usage.get(field), int):
            span.set_attribute(attribute, usage[field])


async def _observed(stream: AsyncGenerator[Any, None], span: trace.Span) -> AsyncGenerator[Any]:
    try:
        async for item in stream:
            _record(span, usage_of(item))
            yield item
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()


async def traced_call(
    operation: str, request: Any, info: RawRequestInfo | None, call: Call
) -> AsyncGenerator[Any, None]:
    """``call(request, info)`` inside a GenAI span that lasts until its answer is consumed."""
    model = str(getattr(request, "model", "") or "")
    span = trace.get_tracer(TRACER_NAME).start_span(
        f"{operation} {model}".strip(),
        kind=SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": operation,
            "gen_ai.system": "vllm",
            "gen_ai.request.model": model,
            "gen_ai.request.stream": bool(getattr(request, "stream", False)),
        },
    )
    try:
        stream = await call(request, with_trace_context(info, span))
    except BaseException as exc:
        span.record_exception(exc)
        span.end()
        raise
    return _observed(stream, span)
