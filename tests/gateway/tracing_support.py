"""A gateway wired to an OTLP receiver, with a key store, for the tracing tests."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from gateway.errors import AuthenticationFailed
from gateway.quotas.protocol import ApiKey
from gateway.telemetry.logs import JsonFormatter
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan

SECRET = "sk-tracing-secret-4f1c9e"
SERVICE = "gemma-gateway"


class Keys:
    async def authenticate(self, secret: str) -> ApiKey:
        if secret != SECRET:
            raise AuthenticationFailed("Unknown API key.")
        return ApiKey("key-1", "tenant-1")


def otlp_provider(receiver: OtlpReceiver) -> TracerProvider:
    """Spans exported over real OTLP/HTTP to ``receiver`` as each one ends."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.traces_url)))
    return provider


def server_span_done(path: str, count: int = 1):  # type: ignore[no-untyped-def]
    """A ``wait_for`` condition: ``count`` server spans of ``path`` have arrived."""

    def done(spans: list[ReceivedSpan]) -> bool:
        return len([s for s in spans if s.name == f"POST {path}"]) >= count

    return done


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """JSON log lines of the gateway and uvicorn (access log included) while the block runs."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    names = ("gateway", "uvicorn.access", "uvicorn.error")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def log_lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
