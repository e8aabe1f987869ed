"""Per-request limits checked before any upstream or media work (see ``RequestLimits``)."""

from __future__ import annotations

from typing import Any

from gateway.api.schemas import ChatCompletionRequest, CompletionRequest
from gateway.errors import InvalidRequest
from gateway.settings import RequestLimits


def _extras(body: ChatCompletionRequest | CompletionRequest, limits: RequestLimits) -> list[str]:
    allowed = set(limits.extra_params)
    return sorted(k for k in (body.model_extra or {}) if k not in allowed)


def _check_numbers(body: ChatCompletionRequest | CompletionRequest, limits: RequestLimits) -> None:
    caps = {"max_tokens": body.max_tokens}
    if isinstance(body, ChatCompletionRequest):
        caps["max_completion_tokens"] = body.max_completion_tokens
    for param, requested in caps.items():
        if requested is not None and requested > limits.max_tokens:
            raise InvalidRequest(
                f"{param} is {requested}; at most {limits.max_tokens} is accepted.",
                param=param,
                code="max_tokens_too_large",
            )
    if body.n is not None and body.n > limits.max_n:
        raise InvalidRequest(
            f"n is {body.n}; at most {limits.max_n} is accepted.", param="n", code="n_too_large"
        )


def checked_payload(
    body: ChatCompletionRequest | CompletionRequest, limits: RequestLimits
) -> dict[str, Any]:
    """The body to forward, after the limits and the unknown-field policy."""
    if isinstance(body, ChatCompletionRequest) and len(body.messages) > limits.max_messages:
        raise InvalidRequest(
            f"The request has {len(body.messages)} messages; at most "
            f"{limits.max_messages} are accepted.",
            param="messages",
            code="too_many_messages",
        )
    _check_numbers(body, limits)
    payload = body.model_dump(exclude_unset=True)
    unknown = _extras(body, limits)
    if unknown and limits.unknown_fields == "reject":
        raise InvalidRequest(
            f"Unrecognized request argument: {unknown[0]}.",
            param=unknown[0],
            code="unknown_parameter",
        )
    if limits.unknown_fields == "drop":
        for name in unknown:
            payload.pop(name, None)
    return payload
