"""What the OpenAPI document says a route answers when it refuses: OpenAI's error body.

``errors(400, 404)`` is a route's (or a router's) ``responses=``: each status with
``ErrorResponse``, the body ``gateway.errors.error_body`` writes, and the headers that
status always carries. The statuses are the ones ``gateway.errors`` maps its classes to;
a router lists those its routes can really answer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

#: What each status means on this gateway (the classes of ``gateway.errors`` behind it).
DESCRIPTIONS: dict[int, str] = {
    400: "The request is malformed or asks for something refused (invalid_request_error).",
    401: "No API key, or one that is unknown or revoked (authentication_error).",
    403: "The key may not use this model, capability or endpoint (permission_error).",
    404: "No such model, resource or route (invalid_request_error).",
    413: "The request body is larger than the configured limit (payload_too_large).",
    429: "A rate limit or quota refuses the request for now (Retry-After says how long).",
    502: "The serving application failed or broke the protocol (upstream_error).",
    503: "The gateway cannot serve right now; retrying later may succeed.",
    504: "The serving application did not answer in time (upstream_error, timeout).",
}

_RETRY_AFTER = {
    "retry-after": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "string"},
    }
}
HEADERS: dict[int, dict[str, Any]] = {429: _RETRY_AFTER}


class ErrorObject(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every refusal's body: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorObject


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of these error statuses."""
    found: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorResponse, "description": DESCRIPTIONS[status]}
        if status in HEADERS:
            entry["headers"] = HEADERS[status]
        found[status] = entry
    return found


#: What a generation may answer besides its success.
GENERATION_ERRORS = errors(400, 401, 403, 404, 413, 429, 502, 503, 504)

#: One server-sent event (``data`` is a JSON chunk, an error body, or ``[DONE]``).
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
}

#: A success that is JSON, or a server-sent event stream when the request says ``stream``.
JSON_OR_STREAM: dict[str, Any] = {
    "description": "The answer (JSON), or its server-sent events when ``stream`` is true.",
    "content": {"application/json": {}, "text/event-stream": {"schema": SSE_EVENT}},
}
