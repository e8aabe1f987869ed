"""One line of an OpenAI batch input file, parsed and validated.

A line is ``{"custom_id", "method": "POST", "url", "body"}`` where ``url`` is
``/v1/chat/completions`` or ``/v1/completions`` and ``body`` is that endpoint's request,
checked with the gateway's own request schemas. Anything wrong raises ``InvalidRequest``
(the runner turns it into an error line); ``custom_id_of`` recovers the id of a line
that is otherwise broken, so its error line can still name it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from gateway.api.schemas import ChatCompletionRequest, CompletionRequest
from gateway.errors import InvalidRequest

Endpoint = Literal["chat", "completion"]
ENDPOINTS: dict[str, Endpoint] = {"/v1/chat/completions": "chat", "/v1/completions": "completion"}
SCHEMAS: dict[Endpoint, type[BaseModel]] = {
    "chat": ChatCompletionRequest,
    "completion": CompletionRequest,
}
UNSUPPORTED_OPTIONS = ("stream", "n", "best_of", "echo", "logprobs", "tools", "suffix")


@dataclass(frozen=True, slots=True)
class BatchLine:
    """A valid input line: its id, endpoint and request body (as sent)."""

    custom_id: str
    endpoint: Endpoint
    url: str
    body: dict[str, Any]


def custom_id_of(raw: str, line_number: int) -> str:
    """The line's ``custom_id`` if it has a usable one, else ``line-<n>`` (1-based)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return f"line-{line_number}"
    value = data.get("custom_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else f"line-{line_number}"


def _object(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"The line is not valid JSON: {exc}.", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("Each line must be a JSON object.", code="invalid_json")
    return data


def _field_error(exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return InvalidRequest(f"body.{where}: {first['msg']}.", param=f"body.{where}")


def _check_options(body: dict[str, Any]) -> None:
    for name in UNSUPPORTED_OPTIONS:
        value = body.get(name)
        if name == "n" and value in (None, 1):
            continue
        if name != "n" and value in (None, False, [], ""):
            continue
        raise InvalidRequest(
            f"'{name}' is not supported in batch requests.",
            param=f"body.{name}",
            code="unsupported_parameter",
        )


def parse_line(raw: str, default_model: str | None = None) -> BatchLine:
    """Validate one input line; raise ``InvalidRequest`` on anything wrong.

    ``default_model`` fills in ``body.model`` when the line names none.
    """
    data = _object(raw)
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise InvalidRequest("custom_id must be a non-empty string.", param="custom_id")
    if data.get("method", "POST") != "POST":
        raise InvalidRequest("method must be POST.", param="method")
    url = data.get("url")
    endpoint = ENDPOINTS.get(url) if isinstance(url, str) else None
    if endpoint is None:
        raise InvalidRequest(
            f"url must be one of {', '.join(ENDPOINTS)}.", param="url", code="invalid_url"
        )
    body = data.get("body")
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object.", param="body")
    if default_model and "model" not in body:
        body = {**body, "model": default_model}
    try:
        SCHEMAS[endpoint].model_validate(body)
    except ValidationError as exc:
        raise _field_error(exc) from exc
    _check_options(body)
    return BatchLine(custom_id, endpoint, str(url), body)
