"""OpenTelemetry tracing of the gateway: the tracer provider and the instrumentations.

The provider comes from the app factory (a test passes its own with an in-memory or
OTLP exporter); without one, ``provider_from_env`` builds it from the standard
``OTEL_*`` variables: spans are exported over OTLP/HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and
``OTEL_TRACES_EXPORTER`` is not ``none``; otherwise spans are still made, so log lines
carry trace ids and the W3C ``traceparent`` still travels upstream, but nothing is sent.

The server span of each request comes from the official FastAPI (ASGI) instrumentation,
which honours an incoming ``traceparent``; the upstream call span from the aiohttp
client instrumentation, which forwards the context to the serving application. Neither records
headers or bodies; the per-message ``http send``/``http receive`` spans are left out.
"""

from __future__ import annotations

import os

import aiohttp
from fastapi import FastAPI
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

DEFAULT_SERVICE_NAME = "gemma-gateway"
TRACER_NAME = "gateway"
#: Operational endpoints are not traced (probes and scrapes would drown the requests).
UNTRACED_URLS = "/healthz,/readyz,/metrics"


def export_configured(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Whether the standard variables ask for OTLP export of traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def provider_from_env() -> TracerProvider:
    """A provider configured by ``OTEL_*`` (service name, resource, sampler, OTLP/HTTP)."""
    named = os.environ.get("OTEL_SERVICE_NAME")
    resource = Resource.create({} if named else {SERVICE_NAME: DEFAULT_SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    if export_configured():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def instrument_app(app: FastAPI, provider: TracerProvider) -> None:
    """Server spans for every request except ``UNTRACED_URLS``."""
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=UNTRACED_URLS,
        exclude_spans=["receive", "send"],
    )


def client_trace_config(provider: TracerProvider) -> aiohttp.TraceConfig:
    """Client spans (and ``traceparent`` injection) for the session to the serving application."""
    return create_trace_config(tracer_provider=provider)
