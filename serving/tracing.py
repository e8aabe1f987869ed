"""OpenTelemetry in the Serve application: Ray Serve's spans, the engine span, one trace.

A request's trace continues the gateway's ``traceparent`` through three layers:

* Ray Serve's own tracing (``serve.start(tracing_config=...)``): the proxy honours the
  incoming ``traceparent``; the proxy, handle routing and each replica call get spans,
  linked across processes. ``span_processors`` is its exporter: OTLP/HTTP to the
  standard ``OTEL_EXPORTER_OTLP_*`` endpoint every Ray worker inherits. Ray Serve 2.60
  hands ``tracing_config`` to its replicas but not to its HTTP proxies, which read the
  ``RAY_SERVE_TRACING_*`` variables instead (``tracing_env`` sets them): without them the
  proxy ignores the ``traceparent`` and every request's replica spans start a new trace.
* ``GemmaLLMServer`` (``serving.server``) wraps each chat/completion call in a GenAI span
  (``gen_ai.request.model``, ``gen_ai.usage.input_tokens``/``output_tokens``) and points the
  request's ``traceparent`` header, which Ray Serve LLM hands to vLLM as the raw request's
  headers (``RawRequestInfo``), at that span.
* vLLM's ``llm_request`` span (engine arg ``otlp_traces_endpoint``; exported over
  OTLP/HTTP by ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf``) is then the child of
  the GenAI span, with time in queue, time to first token and the token counts.

No span carries prompt or completion text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

TRACES_PATH = "/v1/traces"
SERVICE_NAME = "gemma-ray-serve"
EXPORTER_PATH = "serving.tracing:span_processors"


def traces_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """The OTLP/HTTP traces URL from the standard variables (``None``: tracing off)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    if explicit := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return explicit
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}{TRACES_PATH}" if base else None


def tracing_env(endpoint: str, sampling_ratio: float = 1.0) -> dict[str, str]:
    """Environment of Ray's processes whose spans (Ray's, ours, vLLM's) go to ``endpoint``.

    The ``RAY_SERVE_TRACING_*`` pair is how Ray Serve's proxies learn the exporter and
    the sampling ratio of ``serve_tracing_config`` (they never receive the config itself).
    """
    return {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME),
        "RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH": EXPORTER_PATH,
        "RAY_SERVE_TRACING_SAMPLING_RATIO": str(sampling_ratio),
    }


def serve_tracing_config(endpoint: str | None, sampling_ratio: float = 1.0) -> dict[str, Any]:
    """Ray Serve's ``TracingConfig`` (as data) exporting through ``span_processors``.

    Sampling is parent-based: requests from the gateway keep the gateway's decision;
    ``sampling_ratio`` applies to requests that arrive without a ``traceparent``.
    """
    if endpoint is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "exporter_import_path": EXPORTER_PATH,
        "sampling_ratio": sampling_ratio,
    }


def span_processors() -> list[Any]:
    """Ray Serve's exporter hook: a batching OTLP/HTTP processor (endpoint from ``OTEL_*``).

    Serve calls it in each of its processes as tracing starts, the proxies included,
    whose code is otherwise Ray's: their log lines get the trace ids here too (the proxy
    keeps an incoming ``traceparent`` as the request's context, its access line included).
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from serving.logs import install_trace_ids

    install_trace_ids()
    return [BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_endpoint()))]
