"""JSON log lines from the Serve application, with the trace id of the request they belong to.

Three kinds of process write the Serve application's logs, and each is set to JSON here:

* Ray Serve's controller, proxies and replicas: Serve's own ``LoggingConfig`` with
  ``encoding: JSON`` (``SERVE_LOGGING``), given to ``serve.start``/``serve.run`` and written
  into the Serve config file. Their files under ``logs/serve/`` then hold one JSON object
  per line, with Serve's request id, route, deployment and replica.
* The replicas' request-scoped lines (Serve's access log, Ray Serve LLM's and vLLM's
  messages logged while a request runs): ``install_trace_ids`` adds the current span's
  ``trace_id``/``span_id`` to every record of the process, and Ray's JSON formatter writes
  them as fields. Replicas run inside Serve's request span, so the ids are the same trace
  the gateway and the OTLP spans carry. The engine classes call it when they start; in
  the proxies, Serve's tracing exporter hook (``serving.tracing.span_processors``) does,
  and a proxy's access line carries the trace of the ``traceparent`` it received.
* vLLM's own logger, in the replica and in its engine-core process: vLLM's documented
  ``VLLM_LOGGING_CONFIG_PATH`` names ``vllm_logging.json`` (shipped with this package),
  which sends the ``vllm`` logger through the gateway's ``JsonFormatter``.

Lines carry ids and counts, never prompts or completions (vLLM's request logging stays off).
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from opentelemetry import trace

#: Ray Serve's ``LoggingConfig`` of the controller, proxies and every replica.
SERVE_LOGGING: dict[str, Any] = {"encoding": "JSON", "log_level": "INFO"}

#: vLLM's logging configuration (``VLLM_LOGGING_CONFIG_PATH``), a ``dictConfig`` file.
VLLM_LOGGING_FILE = "vllm_logging.json"

_MARK = "_adds_trace_ids"


def vllm_logging_env() -> dict[str, str]:
    """The engine processes' environment that makes vLLM log JSON lines."""
    return {"VLLM_LOGGING_CONFIG_PATH": str(resources.files(__package__) / VLLM_LOGGING_FILE)}


def install_trace_ids() -> None:
    """Give every log record of this process the current span's ``trace_id``/``span_id``.

    Ids are W3C hex strings, ``None`` outside a recorded span. Idempotent: the record
    factory is wrapped once per process.
    """
    base = logging.getLogRecordFactory()
    if getattr(base, _MARK, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        context = trace.get_current_span().get_span_context()
        valid = context.is_valid
        record.trace_id = format(context.trace_id, "032x") if valid else None
        record.span_id = format(context.span_id, "016x") if valid else None
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)
