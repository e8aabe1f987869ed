"""A validated batch line -> the prompt request one variant's engine runs.

The model is resolved with the gateway's routing logic (``gateway.routing.route``) over
the profile's variants, in catalog order (a variant id, an alias or ``auto``); image
parts go through the gateway's ``MediaValidator``, so a batch refuses exactly the images
the gateway refuses. Sampling parameters are complete dicts (every key, defaults filled)
so that every row of a Ray Data block has the same schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from batch.lines import BatchLine
from gateway.errors import InvalidRequest
from gateway.media.settings import MediaSettings
from gateway.media.validator import MediaValidator
from gateway.model_info import ModelInfo
from gateway.routing import Needs, chat_needs, completion_needs, route
from serving.catalog import Catalog

DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0


@dataclass(frozen=True, slots=True)
class PromptRequest:
    """What the engine runs for one line (small, picklable)."""

    custom_id: str
    variant: str
    endpoint: str
    sampling_params: dict[str, Any]
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    images: list[str] = field(default_factory=list)

    @property
    def max_tokens(self) -> int | None:
        value = self.sampling_params.get("max_tokens")
        return value if isinstance(value, int) else None


def profile_models(catalog: Catalog, profile: str) -> list[ModelInfo]:
    """The profile's variants as routing sees them, in catalog order."""
    target = catalog.profile(profile).target
    return [
        ModelInfo(
            id=v.id,
            capabilities=frozenset(v.capabilities) | {"text"},
            context_length=min(v.context_length, v.engines[target].max_model_len),
            order=i,
            kind=v.kind,
        )
        for i, v in enumerate(catalog.profile_variants(profile))
    ]


def _number(body: Mapping[str, Any], name: str, default: float) -> float:
    value = body.get(name)
    return default if value is None else float(value)


def sampling_params(body: Mapping[str, Any]) -> dict[str, Any]:
    """vLLM ``SamplingParams`` fields from an OpenAI body (every key present)."""
    stop = body.get("stop")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    return {
        "max_tokens": max_tokens,
        "temperature": _number(body, "temperature", DEFAULT_TEMPERATURE),
        "top_p": _number(body, "top_p", DEFAULT_TOP_P),
        "stop": [stop] if isinstance(stop, str) else list(stop or []),
        "presence_penalty": _number(body, "presence_penalty", 0.0),
        "frequency_penalty": _number(body, "frequency_penalty", 0.0),
        "seed": body.get("seed"),
    }


def _completion_prompt(body: Mapping[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest(
            "Batch completions take one prompt string per line.",
            param="body.prompt",
            code="unsupported_parameter",
        )
    return prompt


def _image_urls(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    urls = []
    for message in messages:
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("type") == "image_url":
                urls.append(str(part["image_url"]["url"]))
    return urls


def _has_media(messages: Sequence[Mapping[str, Any]]) -> bool:
    return any(isinstance(m.get("content"), list) for m in messages)


class RequestPlanner:
    """Turns valid lines into prompt requests: routing, media checks, sampling.

    ``default_model`` is the model of lines whose body names none.
    """

    def __init__(
        self,
        models: Sequence[ModelInfo],
        *,
        aliases: Mapping[str, str],
        media: MediaSettings | None = None,
        default_model: str | None = None,
    ) -> None:
        self.models = list(models)
        self.default_model = default_model
        self.aliases = dict(aliases)
        self.validator = MediaValidator(media or MediaSettings())

    def resolve(self, requested: str, needs: Needs) -> str:
        """The variant that serves a request (raises the gateway's routing errors)."""
        return route(requested, needs, self.models, aliases=self.aliases).candidates[0].id

    def plan(self, line: BatchLine) -> PromptRequest:
        """The prompt request for a valid line, or ``InvalidRequest``."""
        body = line.body
        params = sampling_params(body)
        if line.endpoint == "completion":
            variant = self.resolve(str(body["model"]), completion_needs(body))
            prompt = _completion_prompt(body)
            return PromptRequest(line.custom_id, variant, "completion", params, prompt=prompt)
        messages = [dict(m) for m in body["messages"]]
        variant = self.resolve(str(body["model"]), chat_needs(body))
        if _has_media(messages):
            messages = anyio.run(self.validator.prepare_messages, messages)
        return PromptRequest(
            line.custom_id,
            variant,
            "chat",
            params,
            messages=messages,
            images=_image_urls(messages),
        )
