"""Per-request limits checked before any upstream or media work (see ``RequestLimits``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.api.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ModerationImagePart,
    ModerationRequest,
    ModerationTextPart,
    ResponseRequest,
)
from gateway.errors import InvalidRequest
from gateway.settings import RequestLimits


def _extras(body: BaseModel, limits: RequestLimits) -> list[str]:
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
    return _known_fields(body, limits)


def _known_fields(body: BaseModel, limits: RequestLimits) -> dict[str, Any]:
    """``body`` as a payload, after the unknown-field policy."""
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


def _embedding_inputs(value: str | list[Any]) -> list[Any]:
    """The inputs of an embeddings request: one string or token array, or a list of them."""
    if isinstance(value, str) or (value and all(isinstance(t, int) for t in value)):
        return [value]
    return list(value)


def checked_embedding_payload(body: EmbeddingRequest, limits: RequestLimits) -> dict[str, Any]:
    """An embeddings body to forward: at least one input, none empty, at most the cap."""
    inputs = _embedding_inputs(body.input)
    _check_inputs(
        len(inputs),
        limits.max_embedding_inputs,
        empty=not inputs or any(len(item) == 0 for item in inputs),
        wanted="a non-empty string or token array, or a non-empty list of them",
    )
    return _known_fields(body, limits)


def _check_inputs(count: int, cap: int, *, empty: bool, wanted: str) -> None:
    """An ``input`` with something in each item, and at most ``cap`` items."""
    if empty:
        raise InvalidRequest(f"input must be {wanted}.", param="input", code="empty_input")
    if count > cap:
        raise InvalidRequest(
            f"The request has {count} inputs; at most {cap} are accepted.",
            param="input",
            code="too_many_inputs",
        )


def checked_response_payload(body: ResponseRequest, limits: RequestLimits) -> dict[str, Any]:
    """A Responses body within the limits chat has: input items and ``max_output_tokens``."""
    if isinstance(body.input, list) and len(body.input) > limits.max_messages:
        raise InvalidRequest(
            f"The request has {len(body.input)} input items; at most {limits.max_messages} "
            "are accepted.",
            param="input",
            code="too_many_messages",
        )
    if body.max_output_tokens is not None and body.max_output_tokens > limits.max_tokens:
        raise InvalidRequest(
            f"max_output_tokens is {body.max_output_tokens}; at most {limits.max_tokens} is "
            "accepted.",
            param="max_output_tokens",
            code="max_tokens_too_large",
        )
    return _known_fields(body, limits)


def moderation_inputs(
    body: ModerationRequest, limits: RequestLimits
) -> tuple[list[str], list[dict[str, Any]]]:
    """The texts to judge (a result each) and the image parts (one result together).

    A string is one text, a list of strings one text each, a list of content parts one
    text (its text parts together) or its images, as OpenAI's moderations take them. Text
    and images are judged by different classifiers (ShieldGemma, ShieldGemma 2), so one
    input holds one or the other; the media limits of chat bound the images.
    """
    _known_fields(body, limits)
    images: list[dict[str, Any]] = []
    if isinstance(body.input, str):
        texts = [body.input]
    elif all(isinstance(item, str) for item in body.input):
        texts = [str(item) for item in body.input]
    else:
        parts = [p.text for p in body.input if isinstance(p, ModerationTextPart)]
        images = [p.model_dump() for p in body.input if isinstance(p, ModerationImagePart)]
        texts = ["\n".join(parts)] if parts else []
    if texts and images:
        raise InvalidRequest(
            "input mixes text and image parts; they are judged by different classifiers: "
            "send them in separate requests.",
            param="input",
            code="unsupported_value",
        )
    _check_inputs(
        len(texts),
        limits.max_moderation_inputs,
        empty=(not texts and not images) or any(not t.strip() for t in texts),
        wanted="a non-empty string, a list of them or a list of content parts",
    )
    return texts, images
