"""Capability routing: what a request needs, and which models may serve it, in order.

Pure logic, no I/O. A request *needs* capabilities read from its content (``text``
always; ``image_url`` parts -> ``vision``; ``input_audio``/``audio_url`` parts and the
audio endpoints -> ``audio``; ``video_url`` parts -> ``video``; ``tools`` -> ``tools``;
asking for thinking -> ``reasoning``, see ``gateway.reasoning``; ``/v1/embeddings`` needs
``embeddings`` alone, which only embedding models have and which they have alone) and room
for its prompt plus ``max_tokens`` in the model's context. A completion with several
prompts runs each prompt apart, so its longest prompt is what must fit; what it may cost
in all is ``gateway.accounting``'s.

The prompt size is a conservative estimate made without a tokenizer: one token per 3
UTF-8 bytes of text (Gemma's tokenizer averages about 4 bytes per token on English,
and 3-byte CJK characters are about one token each), plus ``MESSAGE_TOKENS`` per
message for the chat template, ``IMAGE_TOKENS`` per image (Gemma 3 uses 256 soft
tokens), ``AUDIO_TOKENS`` per audio clip (Gemma 3n: 6.25 tokens per second, 30 s) and
``video_tokens`` per video (``MediaSettings.video_tokens``: Gemma 4 samples up to 32
frames at about 78 tokens each).

The ``model`` field names a model (variant or ``<variant>:<adapter>``), an alias (a model
id prefix) or ``auto`` (every variant). Candidates are the variants with every needed
capability and enough context, smallest first (by ``params_b`` if the cards give it, else
catalog order), healthy ones before unhealthy ones; a named model is its own only
candidate unless named fallback is on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import ContextLengthExceeded, MissingCapability, ModelNotFound
from gateway.media.settings import DEFAULT_VIDEO_TOKENS
from gateway.model_info import ModelInfo
from gateway.reasoning import wants_thinking

AUTO = "auto"
BYTES_PER_TOKEN = 3
MESSAGE_TOKENS = 8
IMAGE_TOKENS = 300
AUDIO_TOKENS = 200
VIDEO_TOKENS = DEFAULT_VIDEO_TOKENS
MODERATION_TEMPLATE_TOKENS = 200
CAPABILITY_ORDER = (
    "embeddings",
    "moderation",
    "image_moderation",
    "video",
    "audio",
    "vision",
    "reasoning",
    "tools",
    "text",
)
_PART_CAPABILITY = {
    "image_url": "vision",
    "input_audio": "audio",
    "audio_url": "audio",
    "video_url": "video",
}


@dataclass(frozen=True, slots=True)
class Needs:
    """What serving one request takes.

    ``prompt_tokens`` estimates every prompt together, ``longest_prompt`` the longest
    (``None``: the only one); ``prompts`` is how many the engine runs and ``choices``
    how many completions it generates for each (``n``, or ``best_of`` when larger).
    """

    capabilities: frozenset[str]
    prompt_tokens: int
    max_tokens: int | None = None
    prompts: int = 1
    choices: int = 1
    longest_prompt: int | None = None

    @property
    def longest_prompt_tokens(self) -> int:
        return self.prompt_tokens if self.longest_prompt is None else self.longest_prompt

    @property
    def context_tokens(self) -> int:
        return self.longest_prompt_tokens + (self.max_tokens or 1)

    @property
    def primary(self) -> str:
        """The most specific capability, for metrics labels."""
        return next(c for c in CAPABILITY_ORDER if c in self.capabilities or c == "text")


@dataclass(frozen=True, slots=True)
class Route:
    """The models that may serve a request, in the order to try them."""

    requested: str
    candidates: tuple[ModelInfo, ...]
    needs: Needs


def text_tokens(text: str) -> int:
    return math.ceil(len(text.encode()) / BYTES_PER_TOKEN)


def _part_needs(part: Any, media_tokens: Mapping[str, int]) -> tuple[str | None, int]:
    if not isinstance(part, Mapping):
        return None, 0
    kind = part.get("type")
    if kind == "text":
        return None, text_tokens(str(part.get("text", "")))
    capability = _PART_CAPABILITY.get(str(kind))
    return capability, media_tokens.get(capability or "", AUDIO_TOKENS)


def _message_needs(
    message: Mapping[str, Any], media_tokens: Mapping[str, int]
) -> tuple[set[str], int]:
    capabilities: set[str] = set()
    tokens = MESSAGE_TOKENS
    content = message.get("content")
    if isinstance(content, str):
        tokens += text_tokens(content)
    elif isinstance(content, list):
        for part in content:
            capability, part_tokens = _part_needs(part, media_tokens)
            tokens += part_tokens
            if capability:
                capabilities.add(capability)
    if message.get("tool_calls"):
        tokens += text_tokens(json.dumps(message["tool_calls"]))
    return capabilities, tokens


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(value) if isinstance(value, int) else None


def _choices(body: Mapping[str, Any]) -> int:
    counts = (body.get("n"), body.get("best_of"))
    return max([1, *(c for c in counts if isinstance(c, int))])


def chat_needs(body: Mapping[str, Any], *, video_tokens: int = VIDEO_TOKENS) -> Needs:
    """The needs of a ``/v1/chat/completions`` body (already validated)."""
    media_tokens = {"vision": IMAGE_TOKENS, "audio": AUDIO_TOKENS, "video": video_tokens}
    capabilities = {"text"}
    tokens = 0
    for message in body.get("messages") or []:
        message_caps, message_tokens = _message_needs(message, media_tokens)
        capabilities |= message_caps
        tokens += message_tokens
    if wants_thinking(body):
        capabilities.add("reasoning")
    if body.get("tools") or body.get("functions"):
        capabilities.add("tools")
        tokens += text_tokens(json.dumps(body.get("tools") or body.get("functions")))
    return Needs(frozenset(capabilities), tokens, _max_tokens(body), choices=_choices(body))


def prompt_estimates(prompt: Any) -> list[int]:
    """Each prompt's tokens: a string, strings, token ids (exact) or lists of token ids."""
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return [len(prompt)]
    texts = prompt if isinstance(prompt, list) and prompt else [prompt or ""]
    return [len(t) if isinstance(t, list) else text_tokens(str(t)) for t in texts]


def completion_needs(body: Mapping[str, Any]) -> Needs:
    """The needs of a ``/v1/completions`` body: one prompt or several (see ``Needs``)."""
    estimates = prompt_estimates(body.get("prompt", ""))
    return Needs(
        frozenset({"text"}),
        sum(estimates),
        _max_tokens(body),
        prompts=len(estimates),
        choices=_choices(body),
        longest_prompt=max(estimates),
    )


def embedding_needs(body: Mapping[str, Any]) -> Needs:
    """The needs of a ``/v1/embeddings`` body: its inputs, each one a prompt, nothing generated.

    ``max_tokens`` 0: the reservation is the inputs' estimate alone (``gateway.accounting``).
    """
    estimates = prompt_estimates(body.get("input", ""))
    return Needs(
        frozenset({"embeddings"}),
        sum(estimates),
        0,
        prompts=len(estimates),
        longest_prompt=max(estimates),
    )


def moderation_needs(texts: list[str], harms: int) -> Needs:
    """The needs of a ``/v1/moderations`` body: each text judged once per harm policy.

    Every judgement is a prompt of its own (the text in a policy's template, about 200
    tokens more) whose one generated token is read for its label probabilities.
    """
    estimates = [text_tokens(t) + MODERATION_TEMPLATE_TOKENS for t in texts for _ in range(harms)]
    return Needs(
        frozenset({"moderation"}),
        sum(estimates),
        1,
        prompts=len(estimates),
        longest_prompt=max(estimates),
    )


def image_moderation_needs(images: int, harms: int) -> Needs:
    """The needs of ``/v1/moderations`` images: each image judged once per harm policy,
    a chat completion of the image and the policy's text each."""
    estimate = IMAGE_TOKENS + MODERATION_TEMPLATE_TOKENS
    judgements = images * harms
    return Needs(
        frozenset({"image_moderation"}),
        estimate * judgements,
        1,
        prompts=judgements,
        longest_prompt=estimate,
    )


def audio_needs() -> Needs:
    """The needs of a transcription or translation."""
    return Needs(frozenset({"text", "audio"}), AUDIO_TOKENS, None)


def _names(models: Iterable[ModelInfo]) -> str:
    return ", ".join(m.id for m in sorted(models, key=ModelInfo.size_key)) or "none"


def _missing(model: ModelInfo, needs: Needs, models: Sequence[ModelInfo]) -> MissingCapability:
    missing = sorted(needs.capabilities - model.capabilities)
    able = [m for m in models if needs.capabilities <= m.capabilities and not m.is_adapter]
    return MissingCapability(
        f"Model '{model.id}' does not support {', '.join(missing)}; "
        f"models that do: {_names(able)}.",
        param="model",
    )


def _fits(model: ModelInfo, needs: Needs) -> bool:
    return model.context_length is None or needs.context_tokens <= model.context_length


def _too_long(requested: str, needs: Needs, models: Collection[ModelInfo]) -> ContextLengthExceeded:
    longest = max((m.context_length or 0) for m in models)
    return ContextLengthExceeded(
        f"The request needs about {needs.context_tokens} tokens (prompt estimate plus "
        f"max_tokens) but the longest context '{requested}' offers is {longest}.",
        param="messages",
    )


def _family(
    requested: str, models: Sequence[ModelInfo], aliases: Mapping[str, str]
) -> list[ModelInfo]:
    variants = [m for m in models if not m.is_adapter]
    if requested == AUTO:
        return variants
    if requested in aliases:
        return [m for m in variants if m.id.startswith(aliases[requested])]
    raise ModelNotFound(
        f"The model '{requested}' does not exist; see GET /v1/models.", param="model"
    )


def _ordered(models: Iterable[ModelInfo], unhealthy: Collection[str]) -> tuple[ModelInfo, ...]:
    return tuple(sorted(models, key=lambda m: (m.id in unhealthy, m.size_key())))


def route(
    requested: str,
    needs: Needs,
    models: Sequence[ModelInfo],
    *,
    aliases: Mapping[str, str],
    unhealthy: Collection[str] = (),
    fallback_named: bool = False,
) -> Route:
    """The candidates for a request, or the error explaining why there are none."""
    by_id = {m.id: m for m in models}
    named = by_id.get(requested)
    if named is not None:
        if not needs.capabilities <= named.capabilities:
            raise _missing(named, needs, models)
        if not _fits(named, needs):
            raise _too_long(requested, needs, [named])
        others = [] if not fallback_named or named.is_adapter else _able(models, needs, named)
        return Route(requested, (named, *_ordered(others, unhealthy)), needs)
    family = _family(requested, models, aliases)
    if not family:
        raise ModelNotFound(f"No model serves the alias '{requested}' right now.", param="model")
    able = [m for m in family if needs.capabilities <= m.capabilities]
    if not able:
        missing = sorted(needs.capabilities - frozenset().union(*(m.capabilities for m in family)))
        missing = missing or sorted(needs.capabilities)  # each is there, never all together
        everywhere = [
            m for m in models if needs.capabilities <= m.capabilities and not m.is_adapter
        ]
        raise MissingCapability(
            f"No model behind '{requested}' supports all of {', '.join(missing)}; "
            f"models that do: {_names(everywhere)}.",
            param="model",
        )
    fitting = [m for m in able if _fits(m, needs)]
    if not fitting:
        raise _too_long(requested, needs, able)
    return Route(requested, _ordered(fitting, unhealthy), needs)


def _able(models: Sequence[ModelInfo], needs: Needs, named: ModelInfo) -> list[ModelInfo]:
    return [
        m
        for m in models
        if m.id != named.id
        and not m.is_adapter
        and needs.capabilities <= m.capabilities
        and _fits(m, needs)
    ]
