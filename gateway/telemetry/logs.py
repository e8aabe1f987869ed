"""Structured JSON logs: one object per line, with the trace and span ids of the request.

``log_config(level)`` is a ``logging.config.dictConfig`` dictionary for uvicorn's
``log_config`` (``gemma-serving gateway`` uses it; the gateway image's entrypoint hands it
to ``uvicorn --log-config`` as the file ``write_log_config`` writes): every record of the
gateway, uvicorn and the access log goes through ``JsonFormatter``. A line written inside a request
carries that request's ``trace_id``/``span_id`` (``null`` outside any span).

Log messages never contain request bodies, prompts, completions or API keys: the access
log records method, path, status and client address only.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

#: ``LogRecord`` attributes that are not extra fields (the ids are the formatter's own).
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
    "trace_id",
    "span_id",
}


def trace_ids() -> tuple[str | None, str | None]:
    """The current span's trace id and span id in W3C hex form (``None`` outside a span)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object with time, level, logger, message and trace ids."""

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = trace_ids()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": trace_id,
            "span_id": span_id,
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def log_config(level: str = "info") -> dict[str, Any]:
    """A ``dictConfig`` sending the gateway's and uvicorn's records to stderr as JSON."""
    name = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    loggers = {
        logger: {"handlers": ["json"], "level": name, "propagate": False}
        for logger in ("gateway", "uvicorn", "uvicorn.error", "uvicorn.access")
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"json": handler},
        "loggers": loggers,
        "root": {"handlers": ["json"], "level": "WARNING"},
    }


def write_log_config(path: str, level: str = "info") -> None:
    """Write ``log_config(level)`` as a JSON file for ``uvicorn --log-config`` (the image's)."""
    with open(path, "w", encoding="utf-8") as file:
        json.dump(log_config(level), file, indent=2)
