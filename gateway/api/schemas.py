"""Request bodies of the OpenAI endpoints the gateway serves.

FastAPI validates types against these models (a wrong type is a 400 naming the
field), as JSON has them (``gateway.api.json_types``: no ``true`` for a number). Fields
OpenAI defines are declared; anything else is an *extra* field, handled by
``RequestLimits.unknown_fields`` in ``gateway.api.limits`` (and so in the OpenAPI
document, ``gateway.api.openapi``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.api.json_types import Boolean, Count, Integer, Number, PositiveInteger

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _OpenAIModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_OpenAIModel):
    role: Role
    content: str | list[dict[str, Any]] | None = None


class _SamplingFields(_OpenAIModel):
    model: str = Field(min_length=1)
    stream: Boolean | None = None
    stream_options: dict[str, Any] | None = None
    max_tokens: PositiveInteger | None = None
    n: PositiveInteger | None = None
    temperature: Number | None = Field(default=None, ge=0)
    top_p: Number | None = Field(default=None, gt=0, le=1)
    frequency_penalty: Number | None = None
    presence_penalty: Number | None = None
    stop: str | list[str] | None = None
    seed: Integer | None = None
    logit_bias: dict[str, Number] | None = None
    user: str | None = None


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: PositiveInteger | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: Boolean | None = None
    response_format: dict[str, Any] | None = None
    logprobs: Boolean | None = None
    top_logprobs: Count | None = None
    metadata: dict[str, str] | None = None
    store: Boolean | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    modalities: list[str] | None = None
    prediction: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    verbosity: str | None = None


class CompletionRequest(_SamplingFields):
    prompt: str | list[str] | list[Integer] | list[list[Integer]]
    best_of: PositiveInteger | None = None
    echo: Boolean | None = None
    logprobs: Count | None = None
    suffix: str | None = None


class EmbeddingRequest(_OpenAIModel):
    model: str = Field(min_length=1)
    input: str | list[str] | list[Count] | list[list[Count]]
    dimensions: PositiveInteger | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None


class ModerationTextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class ModerationImagePart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["image_url"]
    image_url: dict[str, Any]


class ModerationRequest(_OpenAIModel):
    """``/v1/moderations``: a text, texts (a result each) or content parts (one result)."""

    input: str | list[str] | list[ModerationTextPart | ModerationImagePart]
    model: str = Field(default="auto", min_length=1)


class ResponseRequest(_OpenAIModel):
    """``/v1/responses`` (``gateway.responses.convert`` says what of it is supported)."""

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: PositiveInteger | None = None
    temperature: Number | None = Field(default=None, ge=0)
    top_p: Number | None = Field(default=None, gt=0, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: Boolean | None = None
    stream: Boolean | None = None
    store: Boolean | None = None
    background: Boolean | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    include: list[str] | None = None
    truncation: str | None = None
    prompt: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None
    top_logprobs: Count | None = None
    max_tool_calls: PositiveInteger | None = None
    safety_identifier: str | None = None
